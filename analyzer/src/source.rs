//! Opening a trace file of either format: a hindsight binary trace, or a RAPID STD text trace
//! (told apart by content, not by name). Both yield the same [`Unit`]s.

use crate::progress::CountedFile;
use crate::rapid::{looks_like_std, StdError, StdReader};
use hindsight_recorder::format::{
    Damage, Event, Header, ReadError, Tail, TraceReader, Unit, MAGIC,
};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes looked at to recognise an STD trace.
const SNIFF_LEN: usize = 4096;

/// Why a trace file could not be read. One line, naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A binary trace could not be opened.
    #[error(transparent)]
    Binary(#[from] ReadError),
    /// An STD trace has a malformed line, or could not be read.
    #[error(transparent)]
    Std(#[from] StdError),
}

/// Whether `start`, the first [`SNIFF_LEN`] bytes of a file, is the beginning of one STD
/// line too long to sniff (`THREAD|OP(` and no line end): the STD reader then says the line
/// is too long, which is more use than "wrong magic number".
fn starts_a_long_line(start: &[u8]) -> bool {
    if start.len() < SNIFF_LEN || start.contains(&b'\n') {
        return false;
    }
    let Some(bar) = start.iter().position(|&b| b == b'|') else { return false };
    let (thread, rest) = start.split_at(bar);
    !thread.is_empty()
        && thread.iter().all(|b| b.is_ascii_graphic())
        && rest.iter().take(16).any(|&b| b == b'(')
}

/// The items of one trace file, whatever its format.
#[derive(Debug)]
pub enum TraceSource {
    /// A hindsight binary trace.
    Binary(Box<TraceReader<BufReader<CountedFile>>>),
    /// A RAPID STD text trace.
    Std(Box<StdReader<BufReader<CountedFile>>>),
}

impl TraceSource {
    /// Opens `path`, recognising its format from its first bytes.
    pub fn open(path: &Path) -> Result<TraceSource, SourceError> {
        let name = path.display().to_string();
        let io_error = |source| ReadError::Io { path: name.clone(), source };
        let mut file = File::open(path).map_err(io_error)?;
        let mut start = Vec::with_capacity(SNIFF_LEN);
        (&mut file).take(SNIFF_LEN as u64).read_to_end(&mut start).map_err(io_error)?;
        file.seek(SeekFrom::Start(0)).map_err(io_error)?;
        let input = BufReader::with_capacity(1 << 16, CountedFile::new(file));
        if !start.starts_with(&MAGIC) && (looks_like_std(&start) || starts_a_long_line(&start)) {
            return Ok(TraceSource::Std(Box::new(StdReader::new(input, name))));
        }
        Ok(TraceSource::Binary(Box::new(TraceReader::from_reader(input, name)?)))
    }

    /// The trace's header (synthesised for STD files).
    pub fn header(&self) -> &Header {
        match self {
            TraceSource::Binary(reader) => reader.header(),
            TraceSource::Std(reader) => reader.header(),
        }
    }

    /// The format version (0 for STD text).
    pub fn format_version(&self) -> u32 {
        match self {
            TraceSource::Binary(reader) => reader.format_version(),
            TraceSource::Std(_) => 0,
        }
    }

    /// The next unit, with a batch's events appended to `events` (see
    /// [`TraceReader::next_into`]): reading through one reused buffer allocates nothing per
    /// batch. An STD file with a malformed line yields its error once, then ends.
    pub fn next_into(&mut self, events: &mut Vec<Event>) -> Option<Result<Unit, SourceError>> {
        match self {
            TraceSource::Binary(reader) => reader.next_into(events).map(Ok),
            TraceSource::Std(reader) => {
                reader.next_into(events).map(|unit| unit.map_err(SourceError::from))
            }
        }
    }

    /// Whether each batch of events read holds one thread's events only, as a binary
    /// trace's do; an STD trace's batches mix threads.
    pub fn batches_are_one_thread(&self) -> bool {
        matches!(self, TraceSource::Binary(_))
    }

    /// How reading ended, once the items are exhausted: a binary trace may have lost a tail;
    /// an STD trace is all or nothing.
    pub fn tail(&self) -> Tail {
        match self {
            TraceSource::Binary(reader) => reader.tail().cloned().unwrap_or(Tail::Complete),
            TraceSource::Std(_) => Tail::Complete,
        }
    }

    /// The damaged regions skipped (see [`TraceReader::damage`]); none in an STD trace.
    pub fn damage(&self) -> &[Damage] {
        match self {
            TraceSource::Binary(reader) => reader.damage(),
            TraceSource::Std(_) => &[],
        }
    }
}
