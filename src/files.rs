//! Files written so that nothing partial is ever seen under the final name.

use std::path::Path;

/// Write to `.NAME.tmp-PID` next to the file, then rename over it, so that a reader sees the
/// old file or the whole new one. A path that exists but is not a regular file (`/dev/null`,
/// `/dev/stdout`, a FIFO) is written in place: renaming over it would replace the device with
/// a plain file (as root, for everything else on the machine too). A symbolic link is
/// followed, so the link stays and its target gets the new contents.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(bytes)?;
        return f.flush();
    }
    let path = &std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let file_name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per process and per call, so threads of one process writing the same file
    // never share a temporary.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}-{k}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads the whole file at `path`, refusing one larger than `limit` bytes (an
/// `InvalidData` error naming the limit) without reading past it: `/dev/zero` or a
/// runaway file ends here instead of exhausting memory.
pub fn read_capped(path: &Path, limit: u64, what: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than the {} a {what} may have",
                crate::limits::bytes(limit)
            ),
        ));
    }
    Ok(bytes)
}

/// [`read_capped`] as UTF-8 text.
pub fn read_text_capped(path: &Path, limit: u64, what: &str) -> std::io::Result<String> {
    String::from_utf8(read_capped(path, limit, what)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
