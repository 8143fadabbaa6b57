//! What a call outcome stops: the suppressions it calls for.

use super::outcome::CallOutcome;
use crate::domain::{PhoneNumber, SuppressionReason, SuppressionScope};
use crate::store::{Store, StoreResult, Suppression};

/// The suppressions an outcome calls for: a wrong number stops SMS to it;
/// deceased and "do not contact" stop every channel of the phone and of the
/// e-mails of every contact with that phone. Nothing for the others.
pub async fn suppressions_for(
    store: &dyn Store,
    outcome: CallOutcome,
    phone: &PhoneNumber,
    source: &str,
    now: i64,
) -> StoreResult<Vec<Suppression>> {
    let suppression = |address: String, scope, reason| Suppression {
        address,
        scope,
        reason,
        source: source.to_string(),
        created_at: now,
    };
    Ok(match outcome {
        CallOutcome::WrongNumber => vec![suppression(
            phone.to_string(),
            SuppressionScope::Sms,
            SuppressionReason::Invalid,
        )],
        CallOutcome::Deceased | CallOutcome::DoNotContact => {
            let reason = if outcome == CallOutcome::Deceased {
                SuppressionReason::Deceased
            } else {
                SuppressionReason::DoNotContact
            };
            let mut addresses = vec![phone.to_string()];
            for holder in store.contacts_with_phone(phone.as_str()).await? {
                addresses.extend(holder.email);
            }
            addresses
                .into_iter()
                .map(|a| suppression(a, SuppressionScope::All, reason))
                .collect()
        }
        CallOutcome::Neutral => Vec::new(),
    })
}
