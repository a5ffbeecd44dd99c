//! Files written so that nothing partial is ever seen under the final name.

use std::path::Path;

/// Write to a fresh temporary next to the file, then rename over it, so that a reader sees
/// the old file or the whole new one.
///
/// - The temporary is `.NAME.tmp-PID-RANDOM`, created with `create_new` (O_CREAT|O_EXCL):
///   a file or symbolic link planted at that name is never opened or followed. It is
///   registered while in flight, so an interrupt removes it ([`remove_pending`]).
/// - A symbolic link is followed: the link stays and its target gets the new contents,
///   with the target's permissions kept. A dangling link is refused (`NotFound`): ndec
///   does not create files where a link points.
/// - A path that exists but is not a regular file (`/dev/null`, `/dev/stdout`, a FIFO) is
///   written in place: renaming over it would replace the device with a plain file.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(bytes)?;
        return f.flush();
    }
    let target = resolve_target(path)?;
    let permissions = std::fs::metadata(&target).ok().map(|m| m.permissions());
    let (tmp, mut file) = Temporary::create(&target)?;
    file.write_all(bytes)?;
    if let Some(p) = permissions {
        file.set_permissions(p)?;
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp.path, &target)?;
    tmp.committed();
    Ok(())
}

/// The file a write to `path` lands in: `path` itself, or where its symbolic links lead.
fn resolve_target(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(path.to_path_buf());
    }
    std::fs::canonicalize(path).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "`{}` is a symbolic link that leads nowhere ({e})",
                path.display()
            ),
        )
    })
}

/// Temporaries being written, removed by [`remove_pending`] on an interrupt.
static PENDING: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes every temporary file still being written (for a SIGINT/SIGTERM handler, which
/// then exits). Their targets are untouched.
pub fn remove_pending() {
    let pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    for p in pending.iter() {
        let _ = std::fs::remove_file(p);
    }
}

/// A temporary file in flight: registered in `PENDING`, removed on drop unless committed.
struct Temporary {
    path: std::path::PathBuf,
    done: bool,
}

impl Temporary {
    /// Creates `.NAME.tmp-PID-RANDOM` beside `target`, never reusing an existing name.
    fn create(target: &Path) -> std::io::Result<(Temporary, std::fs::File)> {
        let name = target
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for _ in 0..16 {
            let tmp = target.with_file_name(format!(
                ".{name}.tmp-{}-{:016x}",
                std::process::id(),
                random_u64()
            ));
            // Registered before it exists, so an interrupt between the two still finds it.
            PENDING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(tmp.clone());
            let guard = Temporary {
                path: tmp,
                done: false,
            };
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&guard.path)
            {
                Ok(f) => return Ok((guard, f)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Someone else's file: forget the name without removing it.
                    guard.forget();
                    continue;
                }
                Err(e) => {
                    guard.forget();
                    return Err(e);
                }
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "no free temporary name next to the output",
        ))
    }

    /// The rename happened: nothing to remove.
    fn committed(mut self) {
        self.done = true;
    }

    /// Unregisters without removing (the name was not ours).
    fn forget(mut self) {
        self.done = true;
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
        let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|p| p != &self.path);
    }
}

/// 64 unpredictable bits: std's per-process random hash keys over a counter and the clock.
fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::collections::hash_map::RandomState::new().hash_one((k, nanos))
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
