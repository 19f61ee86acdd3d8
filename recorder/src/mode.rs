//! How a recording keeps its events: [`Mode::Streaming`] to a file, or [`Mode::Ring`], a
//! flight recorder that keeps the last events in memory and writes a trace when triggered;
//! and `HINDSIGHT_MODE`, which names a mode without code changes (grammar in [`Mode`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The variable naming the recording mode (see [`Mode`] for its grammar).
pub const MODE_VAR: &str = "HINDSIGHT_MODE";

/// How a recording keeps its events.
///
/// # `HINDSIGHT_MODE`
///
/// [`init`](crate::init) reads the mode from this variable:
///
/// ```text
/// mode     := "streaming" | "ring" [ ":" option ( "," option )* ]
/// option   := "size=" SIZE       keep at most this many bytes of encoded events (default 64MiB)
///           | "age=" DURATION    and only those less than this older than the newest event
///                                (default: no age limit)
///           | "watchdog=" DURATION | "watchdog=off"     dump when a lock wait lasts this long
///                                                         (default 5s)
///           | "contention=" DURATION | "contention=off" dump when a wait lasts this long
///                                                         (default off)
///           | "signal=" ("on" | "off")                   dump on SIGUSR1 (default on)
///           | "panic=" ("on" | "off")                    dump on a panic (default on)
///           | "dumps=" COUNT                             at most this many dumps (default 16)
/// SIZE     := DIGITS ( "B" | "KiB" | "MiB" | "GiB" )   e.g. 512KiB, 64MiB
/// DURATION := NUMBER ( "ms" | "s" | "min" )            e.g. 250ms, 5s, 2.5s, 10min
/// ```
///
/// Examples: `streaming`, `ring`, `ring:size=16MiB`, `ring:size=256MiB,age=30s`,
/// `ring:age=10s,watchdog=2s,contention=200ms,signal=off`. Spaces around items are allowed;
/// anything else (an unknown option, a missing unit, a size of zero) is an error, reported in
/// one line by [`init`](crate::init), which then does not record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Write every event to the trace file as it comes, one round of the writer thread at a
    /// time (the default). A process killed at any moment leaves a readable file that lacks
    /// at most the last flush interval.
    #[default]
    Streaming,
    /// The flight recorder: keep the last events in memory, bounded, and write a complete
    /// trace only when something triggers it (see [`FlightRecorder`]).
    Ring(FlightRecorder),
}

/// Settings of the flight recorder ([`Mode::Ring`]): how much it keeps and what makes it
/// write a trace (a *dump*).
///
/// It keeps the newest encoded events up to [`max_bytes`](Self::max_bytes) (and, if set, no
/// older than [`max_age`](Self::max_age)), whole writer rounds at a time. A dump is
/// written when:
///
/// - the program asks ([`RecorderGuard::dump`](crate::RecorderGuard::dump),
///   [`dump`](crate::dump()));
/// - a thread panics ([`on_panic`](Self::on_panic));
/// - the process receives `SIGUSR1` ([`on_signal`](Self::on_signal), Unix only);
/// - a thread or task has waited for a lock longer than the [`watchdog`](Self::watchdog)
///   threshold (a hang), or longer than the [`contention`](Self::contention) threshold.
///
/// Each dump is a complete trace on its own, numbered, and carries a `Mark` event naming its
/// trigger (see [`RecorderBuilder::mode`](crate::RecorderBuilder::mode) for file names).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlightRecorder {
    /// The most bytes of encoded events kept (about 5 bytes per event), plus one writer round.
    pub max_bytes: u64,
    /// Events more than this older than the program's newest event are let go, even when
    /// there is room (a hung, quiet program keeps what led to the hang).
    pub max_age: Option<Duration>,
    /// A lock wait longer than this is a hang: dump (default 5 s).
    pub watchdog: Option<Duration>,
    /// A lock wait longer than this is contention worth a dump (default: off).
    pub contention: Option<Duration>,
    /// Dump on `SIGUSR1` (Unix; default on).
    pub on_signal: bool,
    /// Dump when a thread panics (default on).
    pub on_panic: bool,
    /// The most dumps one recording writes; later triggers are ignored (default 16).
    pub max_dumps: u32,
}

/// Default [`FlightRecorder::max_bytes`]: 64 MiB.
pub const DEFAULT_RING_BYTES: u64 = 64 << 20;
/// Default [`FlightRecorder::watchdog`] threshold: 5 s.
pub const DEFAULT_WATCHDOG: Duration = Duration::from_secs(5);
/// Default [`FlightRecorder::max_dumps`].
pub const DEFAULT_MAX_DUMPS: u32 = 16;

impl Default for FlightRecorder {
    fn default() -> Self {
        FlightRecorder {
            max_bytes: DEFAULT_RING_BYTES,
            max_age: None,
            watchdog: Some(DEFAULT_WATCHDOG),
            contention: None,
            on_signal: true,
            on_panic: true,
            max_dumps: DEFAULT_MAX_DUMPS,
        }
    }
}

impl FlightRecorder {
    /// The default settings: 64 MiB, no age limit, watchdog at 5 s, dumps on signal and panic.
    pub fn new() -> Self {
        FlightRecorder::default()
    }

    /// Keeps at most `bytes` of encoded events (at least 64 KiB).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes.max(64 << 10);
        self
    }

    /// Lets events older than `age` go (or keeps them while there is room, with `None`).
    pub fn max_age(mut self, age: Option<Duration>) -> Self {
        self.max_age = age;
        self
    }

    /// Dumps when a lock wait lasts longer than `threshold` (`None`: no hang watchdog).
    pub fn watchdog(mut self, threshold: Option<Duration>) -> Self {
        self.watchdog = threshold;
        self
    }

    /// Dumps when a lock wait lasts longer than `threshold`, at most once per
    /// [`CONTENTION_COOLDOWN`] (`None`, the default: no contention trigger).
    pub fn contention(mut self, threshold: Option<Duration>) -> Self {
        self.contention = threshold;
        self
    }

    /// Dumps on `SIGUSR1` (Unix only).
    pub fn on_signal(mut self, yes: bool) -> Self {
        self.on_signal = yes;
        self
    }

    /// Dumps when a thread panics.
    pub fn on_panic(mut self, yes: bool) -> Self {
        self.on_panic = yes;
        self
    }

    /// Writes at most `count` dumps.
    pub fn max_dumps(mut self, count: u32) -> Self {
        self.max_dumps = count;
        self
    }
}

/// The shortest time between two dumps triggered by contention.
pub const CONTENTION_COOLDOWN: Duration = Duration::from_secs(10);

/// Why a `HINDSIGHT_MODE` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a recording mode: {reason} (expected `streaming`, or `ring` with options such as `ring:size=64MiB,age=30s`)")]
pub struct ModeError {
    /// The refused value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for Mode {
    type Err = ModeError;

    fn from_str(value: &str) -> Result<Mode, ModeError> {
        let error = |reason: String| ModeError { value: value.to_owned(), reason };
        let (name, options) = match value.trim().split_once(':') {
            Some((name, options)) => (name.trim(), Some(options)),
            None => (value.trim(), None),
        };
        match (name, options) {
            ("streaming", None) => return Ok(Mode::Streaming),
            ("streaming", Some(_)) => return Err(error("`streaming` takes no options".into())),
            ("ring", _) => {}
            _ => return Err(error(format!("unknown mode `{name}`"))),
        }
        let mut ring = FlightRecorder::default();
        let options = options.map(str::trim).filter(|o| !o.is_empty());
        for option in options.into_iter().flat_map(|o| o.split(',')).map(str::trim) {
            let Some((key, val)) = option.split_once('=') else {
                return Err(error(format!("option `{option}` has no `=value`")));
            };
            let (key, val) = (key.trim(), val.trim());
            match key {
                "size" => {
                    let bytes = parse_size(val).map_err(error)?;
                    if bytes < 64 << 10 {
                        return Err(error(format!("size {val} is below the minimum of 64KiB")));
                    }
                    ring.max_bytes = bytes;
                }
                "age" => ring.max_age = Some(parse_duration(val).map_err(error)?),
                "watchdog" => ring.watchdog = parse_optional_duration(val).map_err(error)?,
                "contention" => ring.contention = parse_optional_duration(val).map_err(error)?,
                "signal" => ring.on_signal = parse_switch(val).map_err(error)?,
                "panic" => ring.on_panic = parse_switch(val).map_err(error)?,
                "dumps" => {
                    ring.max_dumps = val
                        .parse()
                        .map_err(|_| error(format!("dumps={val} is not a whole number")))?
                }
                _ => return Err(error(format!("unknown option `{key}`"))),
            }
        }
        Ok(Mode::Ring(ring))
    }
}

impl fmt::Display for Mode {
    /// The mode in the `HINDSIGHT_MODE` grammar (parsing it gives the same mode back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = match self {
            Mode::Streaming => return f.write_str("streaming"),
            Mode::Ring(ring) => ring,
        };
        let off =
            |d: Option<Duration>| d.map_or("off".to_owned(), |d| format!("{}s", d.as_secs_f64()));
        let on = |b: bool| if b { "on" } else { "off" };
        write!(f, "ring:size={}B", ring.max_bytes)?;
        if let Some(age) = ring.max_age {
            write!(f, ",age={}s", age.as_secs_f64())?;
        }
        write!(
            f,
            ",watchdog={},contention={},signal={},panic={},dumps={}",
            off(ring.watchdog),
            off(ring.contention),
            on(ring.on_signal),
            on(ring.on_panic),
            ring.max_dumps
        )
    }
}

/// Splits `text` into its leading number and its unit.
fn split_unit(text: &str) -> (&str, &str) {
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    (&text[..end], text[end..].trim())
}

fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_unit(text);
    let value: u64 = number.parse().map_err(|_| format!("size `{text}` is not DIGITS+UNIT"))?;
    let scale: u64 = match unit {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "" => return Err(format!("size `{text}` has no unit (B, KiB, MiB or GiB)")),
        _ => return Err(format!("unknown size unit `{unit}` (B, KiB, MiB or GiB)")),
    };
    value.checked_mul(scale).ok_or_else(|| format!("size `{text}` is too large"))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_unit(text);
    let value: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or_else(|| format!("duration `{text}` is not a positive NUMBER+UNIT"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" => value,
        "min" => value * 60.0,
        "" => return Err(format!("duration `{text}` has no unit (ms, s or min)")),
        _ => return Err(format!("unknown duration unit `{unit}` (ms, s or min)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("duration `{text}` is too long"))
}

fn parse_optional_duration(text: &str) -> Result<Option<Duration>, String> {
    if text == "off" {
        return Ok(None);
    }
    parse_duration(text).map(Some)
}

fn parse_switch(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{text}` is neither `on` nor `off`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_accepts_what_the_docs_show() {
        assert_eq!("streaming".parse(), Ok(Mode::Streaming));
        assert_eq!("ring".parse(), Ok(Mode::Ring(FlightRecorder::default())));
        let Ok(Mode::Ring(ring)) = "ring:size=16MiB".parse() else { panic!() };
        assert_eq!(ring.max_bytes, 16 << 20);
        let Ok(Mode::Ring(ring)) = " ring: size=256MiB , age=30s ".parse() else { panic!() };
        assert_eq!((ring.max_bytes, ring.max_age), (256 << 20, Some(Duration::from_secs(30))));
        let Ok(Mode::Ring(ring)) =
            "ring:age=10s,watchdog=2.5s,contention=200ms,signal=off,panic=off,dumps=3".parse()
        else {
            panic!()
        };
        assert_eq!(ring.watchdog, Some(Duration::from_millis(2500)));
        assert_eq!(ring.contention, Some(Duration::from_millis(200)));
        assert!(!ring.on_signal && !ring.on_panic);
        assert_eq!(ring.max_dumps, 3);
        let Ok(Mode::Ring(ring)) = "ring:watchdog=off,age=1min".parse() else { panic!() };
        assert_eq!((ring.watchdog, ring.max_age), (None, Some(Duration::from_secs(60))));
    }

    #[test]
    fn malformed_values_are_refused_with_a_reason() {
        for bad in [
            "",
            "rings",
            "streaming:size=1MiB",
            "ring:size=64",
            "ring:size=64MB",
            "ring:size=1KiB",
            "ring:age=30",
            "ring:age=-1s",
            "ring:age=0s",
            "ring:size",
            "ring:colour=blue",
            "ring:signal=yes",
            "ring:dumps=many",
            "ring:size=99999999999GiB",
        ] {
            let error = bad.parse::<Mode>().expect_err(bad);
            assert!(!error.reason.is_empty());
            assert!(!error.to_string().contains('\n'), "one line: {error}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["streaming", "ring", "ring:size=1MiB,age=2s,watchdog=off,contention=50ms"] {
            let mode: Mode = text.parse().unwrap();
            assert_eq!(mode.to_string().parse::<Mode>(), Ok(mode));
        }
    }
}
