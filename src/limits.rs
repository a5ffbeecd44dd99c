//! The documented limits of this version (docs/limits.md), and the memory estimate a run is
//! checked against before it allocates.
//!
//! Every limit lives here, so the docs, the checks and the tests read one number. A limit is
//! refused early with the number and the limit in the message, never met as an abort.

/// The largest model source read, in bytes (`ndec check /dev/zero` stops here).
pub const MAX_MODEL_BYTES: u64 = 16 << 20;

/// The largest params, data or vary file read, in bytes.
pub const MAX_INPUT_FILE_BYTES: u64 = 1 << 30;

/// The deepest expression tree accepted (E0013). Every stage recurses over expressions, on
/// a thread with `COMPILER_STACK_BYTES` of stack, which holds this depth with a wide
/// margin; a left-to-right sum of N terms is N deep.
pub const MAX_NESTING: u32 = 100_000;

/// The stack of the thread the front end and lowering run on (`driver::on_compiler_stack`).
pub const COMPILER_STACK_BYTES: usize = 1 << 30;

/// The largest number of scalar entries (state entries plus params, net weights included)
/// one model may have in this version (exit 4 above it).
pub const MAX_MODEL_ENTRIES: u64 = 1 << 28;

/// The most repetitions `ndec run --repeat` takes.
pub const MAX_REPEAT: u64 = 1_000_000;

/// Bytes per number in a CSV the run writes (shortest round-trip form, comma): what the
/// output text costs on top of the solution itself.
pub const CSV_BYTES_PER_NUMBER: u64 = 24;

/// The memory a run may use unless `--max-memory` says otherwise: the machine's physical
/// memory (from /proc/meminfo), or 16 GiB where that cannot be read.
pub fn default_memory_limit() -> u64 {
    physical_memory().unwrap_or(16 << 30)
}

fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// An estimate of the memory a command needs, by part, in bytes. Parts saturate at
/// `u64::MAX`, so an absurd size is refused, never wrapped into a small one.
#[derive(Clone, Debug, Default)]
pub struct MemoryEstimate {
    parts: Vec<(&'static str, u64)>,
}

impl MemoryEstimate {
    /// An empty estimate.
    pub fn new() -> MemoryEstimate {
        MemoryEstimate::default()
    }

    /// Adds `count` items of `bytes_each` bytes under `what`.
    pub fn add(&mut self, what: &'static str, count: u64, bytes_each: u64) -> &mut Self {
        self.parts.push((what, count.saturating_mul(bytes_each)));
        self
    }

    /// The total in bytes.
    pub fn total(&self) -> u64 {
        self.parts
            .iter()
            .fold(0u64, |acc, (_, b)| acc.saturating_add(*b))
    }

    /// `Err` with a message naming the total, its largest part and the limit when the
    /// total is over `limit` bytes.
    pub fn check(&self, limit: u64) -> Result<(), String> {
        let total = self.total();
        if total <= limit {
            return Ok(());
        }
        let (what, biggest) = self
            .parts
            .iter()
            .max_by_key(|(_, b)| *b)
            .copied()
            .unwrap_or(("nothing", 0));
        let about = if total == u64::MAX { "" } else { "about " };
        Err(format!(
            "this needs {about}{} of memory ({what}: {}), more than the limit of {}",
            bytes(total),
            bytes(biggest),
            bytes(limit)
        ))
    }
}

/// A byte count for people: `12.3 GiB`, or `more than 16 EiB` at saturation.
pub fn bytes(n: u64) -> String {
    if n == u64::MAX {
        return "more than 16 EiB".to_string();
    }
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

/// Parses a `--max-memory` value: a number of GiB (`8`, `0.5`), or with a unit suffix
/// (`512M`, `8G`, `1T`).
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, scale) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1 << 30),
    };
    let x: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 8, 512M, 8G)"))?;
    if !(x > 0.0 && x.is_finite()) {
        return Err(format!("`{text}` must be a positive size"));
    }
    let b = x * scale as f64;
    Ok(if b >= u64::MAX as f64 {
        u64::MAX
    } else {
        b as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_saturate_and_name_their_largest_part() {
        let mut e = MemoryEstimate::new();
        e.add("trajectories", u64::MAX / 2, 3)
            .add("workspace", 10, 8);
        assert_eq!(e.total(), u64::MAX);
        let msg = e.check(1 << 30).unwrap_err();
        assert!(msg.contains("trajectories: more than 16 EiB"), "{msg}");
        assert!(msg.contains("limit of 1.0 GiB"), "{msg}");
        let mut small = MemoryEstimate::new();
        small.add("x", 1000, 8);
        assert!(small.check(8000).is_ok());
        assert!(small.check(7999).is_err());
    }

    #[test]
    fn memory_sizes_parse_with_and_without_units() {
        assert_eq!(parse_memory("8").unwrap(), 8 << 30);
        assert_eq!(parse_memory("512M").unwrap(), 512 << 20);
        assert_eq!(parse_memory("0.5g").unwrap(), 1 << 29);
        assert_eq!(parse_memory("1e30").unwrap(), u64::MAX);
        for bad in ["", "-1", "0", "x", "nanG", "infT"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }
}
