//! How far this process has read its trace files, for a progress display.
//!
//! Every trace file opened through [`TraceSource`](crate::source::TraceSource) is read through a
//! [`CountedFile`], which adds each read's bytes to one process-wide counter: one relaxed atomic
//! add per buffer refill (64 KiB), nothing per event, so replay is as fast with it as without.
//! A display polls [`bytes_read`] from its own thread and compares it with the files' sizes.

use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes read from trace files by this process so far.
static BYTES_READ: AtomicU64 = AtomicU64::new(0);

/// Bytes read from trace files by this process so far (by every analysis, if several run).
pub fn bytes_read() -> u64 {
    BYTES_READ.load(Ordering::Relaxed)
}

/// A trace file whose reads count towards [`bytes_read`].
#[derive(Debug)]
pub struct CountedFile(File);

impl CountedFile {
    /// Counts the reads of `file` from now on.
    pub fn new(file: File) -> Self {
        CountedFile(file)
    }
}

impl Read for CountedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        BYTES_READ.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_through_a_counted_file_add_up() {
        let path = std::env::temp_dir().join(format!("hindsight-progress-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 100_000]).unwrap();
        let before = bytes_read();
        let mut all = Vec::new();
        CountedFile::new(File::open(&path).unwrap()).read_to_end(&mut all).unwrap();
        // Other tests may read at the same time: the counter grows by at least our bytes.
        assert!(bytes_read() - before >= 100_000);
        let _ = std::fs::remove_file(&path);
    }
}
