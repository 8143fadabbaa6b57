//! Signed, per-message tokens: the unsubscribe link in an e-mail and the
//! delivery-report URL given to an SMS gateway. A token names its message and
//! carries an HMAC, so a forged or altered one is refused without a lookup
//! table, and it cannot be guessed from the message number.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::store::{Store, StoreResult};

type HmacSha256 = Hmac<Sha256>;

/// The purposes a token can serve; a token for one is useless for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Unsubscribe,
    Receipt,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::Unsubscribe => "unsubscribe",
            Purpose::Receipt => "receipt",
        }
    }
}

#[derive(Clone)]
pub struct Tokens {
    /// The HMAC with the key already absorbed: cloned per token, which spares
    /// hashing the key again for every message.
    keyed: HmacSha256,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(***)")
    }
}

impl Tokens {
    pub fn new(key: &[u8]) -> Tokens {
        Tokens {
            keyed: HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length"),
        }
    }

    /// The installation's key, created in the database on first use so every
    /// worker and `aviso serve` agree on it with no setup.
    pub async fn from_store(store: &dyn Store) -> StoreResult<Tokens> {
        let mut fresh = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut fresh);
        let key = store
            .setting_or_init("token_key", &hex::encode(fresh))
            .await?;
        Ok(Tokens::new(key.as_bytes()))
    }

    fn mac(&self, purpose: Purpose, message_id: i64) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(purpose.label().as_bytes());
        mac.update(&message_id.to_be_bytes());
        mac
    }

    /// `123.<signature>`.
    pub fn token(&self, purpose: Purpose, message_id: i64) -> String {
        let sig = self.mac(purpose, message_id).finalize().into_bytes();
        format!("{message_id}.{}", URL_SAFE_NO_PAD.encode(&sig[..16]))
    }

    /// The message a token names, if its signature is right.
    pub fn verify(&self, purpose: Purpose, token: &str) -> Option<i64> {
        let (id, sig) = token.split_once('.')?;
        let id: i64 = id.parse().ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok().filter(|s| s.len() == 16)?;
        self.mac(purpose, id).verify_truncated_left(&sig).ok()?;
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_message_and_purpose() {
        let t = Tokens::new(b"k");
        let tok = t.token(Purpose::Unsubscribe, 42);
        assert_eq!(t.verify(Purpose::Unsubscribe, &tok), Some(42));
        assert_eq!(t.verify(Purpose::Receipt, &tok), None);
        let forged = tok.replacen("42.", "43.", 1);
        assert_eq!(t.verify(Purpose::Unsubscribe, &forged), None);
        assert_eq!(
            Tokens::new(b"other").verify(Purpose::Unsubscribe, &tok),
            None
        );
        assert_eq!(t.verify(Purpose::Unsubscribe, "garbage"), None);
        assert_eq!(t.verify(Purpose::Unsubscribe, "1."), None);
    }
}
