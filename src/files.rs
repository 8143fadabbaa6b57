//! Files that hold voters' data (the database, rejected rows, exports, the
//! file transports' messages) are readable and writable by their owner only.

/// Options that create a file with mode 0600 (on Unix); the caller adds how it
/// opens it (`write`, `append`, `truncate`…). A file that already exists keeps
/// its mode.
pub fn owner_only() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}
