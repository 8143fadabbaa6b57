//! The file transport: e-mails as `.eml` files, SMS as JSON lines. It is the
//! embedded default (`aviso demo`) and the dry run: nothing leaves the machine.

use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{Accepted, Channel, DeliveryError, Outgoing, ProviderInfo};
use crate::domain::ChannelKind;

pub struct FileChannel {
    info: ProviderInfo,
    dir: PathBuf,
    sms_log: Mutex<Option<std::fs::File>>,
}

impl FileChannel {
    pub fn new(dir: PathBuf, kind: ChannelKind) -> std::io::Result<FileChannel> {
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(FileChannel {
            info: ProviderInfo {
                name: format!("file://{}", dir.display()),
                kind,
                rate: None,
                connections: 4,
            },
            dir,
            sms_log: Mutex::new(None),
        })
    }

    fn failed(&self, what: &str, e: std::io::Error) -> DeliveryError {
        DeliveryError::temporary(format!(
            "cannot write {what} in {}: {e}",
            self.dir.display()
        ))
    }
}

#[async_trait]
impl Channel for FileChannel {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn send(&self, message: &Outgoing) -> Result<Accepted, DeliveryError> {
        match message {
            Outgoing::Email(email) => {
                // One file per outbox row, named by its reference: a resend
                // after a crash replaces the file instead of adding one.
                let path = self.dir.join(format!("{}.eml", email.reference));
                let tmp = self.dir.join(format!(".{}.eml.tmp", email.reference));
                write_private(&tmp, &email.raw)
                    .await
                    .map_err(|e| self.failed("an e-mail", e))?;
                tokio::fs::rename(&tmp, &path)
                    .await
                    .map_err(|e| self.failed("an e-mail", e))?;
                Ok(Accepted {
                    code: Some("file".into()),
                    provider_ref: Some(email.reference.clone()),
                })
            }
            Outgoing::Sms(sms) => {
                let line = serde_json::json!({
                    "reference": sms.reference,
                    "to": sms.to,
                    "text": sms.text,
                    "encoding": sms.encoding,
                    "segments": sms.segments,
                });
                let mut guard = self.sms_log.lock().await;
                if guard.is_none() {
                    let file = crate::files::owner_only()
                        .create(true)
                        .append(true)
                        .open(self.dir.join("sms.jsonl"))
                        .map_err(|e| self.failed("sms.jsonl", e))?;
                    *guard = Some(file);
                }
                if let Some(file) = guard.as_mut() {
                    // One write per line: `writeln!` on a file would make a
                    // system call for every piece of the JSON.
                    let mut line = line.to_string();
                    line.push('\n');
                    file.write_all(line.as_bytes())
                        .map_err(|e| self.failed("sms.jsonl", e))?;
                }
                Ok(Accepted {
                    code: Some("file".into()),
                    provider_ref: Some(sms.reference.clone()),
                })
            }
        }
    }
}

/// Messages hold voters' addresses: readable by the owner only.
async fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut options = crate::files::owner_only();
    options.write(true).create(true).truncate(true);
    let mut file = tokio::fs::OpenOptions::from(options).open(path).await?;
    file.write_all(bytes).await?;
    file.flush().await
}
