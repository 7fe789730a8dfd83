//! `file://DIR`: each message as `<id>.eml` in a directory — the embedded
//! default, for trying the service out and for tests.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{Delivery, Dsn, DsnError, Transport, TransportError, mime};
use crate::email::OutgoingMessage;

/// Writes one `.eml` file per message into a directory.
#[derive(Debug, Clone)]
pub struct FileTransport {
    dir: PathBuf,
}

impl FileTransport {
    /// A transport writing into `dir` (created when the first message comes).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// From `file://outbox` (relative), `file://outbox/sub` or `file:///var/mail` (absolute).
    pub fn from_dsn(dsn: &Dsn) -> Result<Self, DsnError> {
        let dir = match (dsn.host.as_str(), dsn.path.as_str()) {
            ("", "") => return Err(DsnError::invalid("file", "missing directory")),
            ("", path) => PathBuf::from("/").join(path),
            (host, "") => PathBuf::from(host),
            (host, path) => Path::new(host).join(path),
        };
        Ok(Self::new(dir))
    }

    /// The directory messages are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Transport for FileTransport {
    async fn send(&self, message: &OutgoingMessage) -> Result<Delivery, TransportError> {
        let bytes = mime::to_eml(message, mime::AddressForm::AsGiven)?;
        let path = self.dir.join(format!("{}.eml", message.id));
        // Written under a temporary name and renamed, so a reader of the
        // directory never sees half a message.
        let temp = self.dir.join(format!(".{}.eml.tmp", message.id));
        let written = match write_file(&self.dir, &temp, &bytes).await {
            Ok(()) => tokio::fs::rename(&temp, &path).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            // Best effort: a leftover temporary file is harmless but untidy.
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(io_error("write", &path, &e));
        }
        Ok(Delivery {
            provider_message_id: Some(path.display().to_string()),
        })
    }

    async fn check(&self) -> Result<(), TransportError> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| io_error("create", &self.dir, &e))
    }
}

async fn write_file(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    tokio::fs::create_dir_all(dir).await?;
    let mut file = tokio::fs::File::create(path).await?;
    file.write_all(bytes).await?;
    file.sync_all().await
}

/// A full disk or a missing permission may be fixed by an operator: transient.
fn io_error(action: &str, path: &Path, error: &std::io::Error) -> TransportError {
    TransportError::transient(format!("cannot {action} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_from_dsn() {
        let dir = |s: &str| FileTransport::from_dsn(&Dsn::parse(s).unwrap()).map(|t| t.dir);
        assert_eq!(dir("file://outbox").unwrap(), PathBuf::from("outbox"));
        assert_eq!(
            dir("file://outbox/sub").unwrap(),
            PathBuf::from("outbox/sub")
        );
        assert_eq!(dir("file:///var/mail").unwrap(), PathBuf::from("/var/mail"));
        assert!(dir("file://").is_err());
    }
}
