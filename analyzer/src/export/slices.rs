//! Slices on one lane of a timeline, kept properly nested.
//!
//! Timeline viewers (the Chrome trace-event format) require the complete events of one lane to
//! nest: a slice that starts inside another ends inside it too. What a thread or task does
//! need not nest: it may take `a`, then `b`, and release `a` first. A [`Lane`] keeps the open
//! slices as a stack; closing one that is not innermost also cuts the slices opened after it at
//! that moment and resumes each of them as a new piece, so every piece nests and none is lost:
//!
//! ```text
//! events:   take a ─── take b ─── release a ─── release b
//! pieces:   [a ·························]
//!                      [b ···········][b ··············]
//!                        (continues)   (continued)
//! ```
//!
//! Each lane also keeps its own clock, which never goes back: a slice never starts before the
//! lane's last opening or closing, even if the merged clocks of several files or threads
//! disagree by a little, so a slice never has a negative duration or sticks out of its parent.

/// A slice not yet closed.
#[derive(Debug, Clone, Copy)]
struct Open<T> {
    what: T,
    start_ns: u64,
    continued: bool,
}

/// A piece of a slice, closed and ready to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Closed<T> {
    /// What the slice is.
    pub what: T,
    /// When the piece starts.
    pub start_ns: u64,
    /// When it ends (never before it starts).
    pub end_ns: u64,
    /// The piece continues an earlier piece of the same slice.
    pub continued: bool,
    /// The slice goes on in a later piece: this piece was cut to keep the lane nested.
    pub continues: bool,
}

/// One lane's open slices, innermost last; see the module docs.
#[derive(Debug, Clone)]
pub(super) struct Lane<T> {
    open: Vec<Open<T>>,
    clock_ns: u64,
}

impl<T: Copy> Lane<T> {
    /// A lane with nothing open, whose clock starts at 0.
    pub fn new() -> Self {
        Lane { open: Vec::new(), clock_ns: 0 }
    }

    /// Moves the lane's clock to `time_ns` unless it is already later; returns it.
    fn tick(&mut self, time_ns: u64) -> u64 {
        self.clock_ns = self.clock_ns.max(time_ns);
        self.clock_ns
    }

    /// Opens a slice at `time_ns`, inside every slice open now.
    pub fn open(&mut self, what: T, time_ns: u64) {
        let start_ns = self.tick(time_ns);
        self.open.push(Open { what, start_ns, continued: false });
    }

    /// Closes the innermost open slice that `target` accepts, at `time_ns`. Appends to
    /// `closed` the pieces that end now, innermost first: the slices opened after the target
    /// (cut, marked [`continues`](Closed::continues), and resumed at once), then the target
    /// itself, last. Returns `false`, closing nothing, if no open slice is a target.
    pub fn close(
        &mut self,
        time_ns: u64,
        target: impl Fn(&T) -> bool,
        closed: &mut Vec<Closed<T>>,
    ) -> bool {
        let Some(index) = self.open.iter().rposition(|open| target(&open.what)) else {
            return false;
        };
        let end_ns = self.tick(time_ns);
        let target = self.open.remove(index);
        // The slices that were inside the target now sit at `index..`, outermost first.
        for inner in self.open[index..].iter_mut().rev() {
            // A slice that started this very moment needs no cut.
            if inner.start_ns < end_ns {
                closed.push(Closed {
                    what: inner.what,
                    start_ns: inner.start_ns,
                    end_ns,
                    continued: inner.continued,
                    continues: true,
                });
                inner.start_ns = end_ns;
                inner.continued = true;
            }
        }
        closed.push(Closed {
            what: target.what,
            start_ns: target.start_ns,
            end_ns,
            continued: target.continued,
            continues: false,
        });
        true
    }

    /// Closes every open slice at `time_ns` (or at the lane's clock, if later), appending
    /// them to `closed` innermost first.
    pub fn close_all(&mut self, time_ns: u64, closed: &mut Vec<Closed<T>>) {
        let end_ns = self.tick(time_ns);
        closed.extend(self.open.drain(..).rev().map(|open| Closed {
            what: open.what,
            start_ns: open.start_ns,
            end_ns,
            continued: open.continued,
            continues: false,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(
        what: char,
        start_ns: u64,
        end_ns: u64,
        continued: bool,
        continues: bool,
    ) -> Closed<char> {
        Closed { what, start_ns, end_ns, continued, continues }
    }

    #[test]
    fn nested_slices_close_innermost_first_without_cuts() {
        // a: [10 ────────── 40]
        // b:     [20 ── 30]
        let mut lane = Lane::new();
        let mut closed = Vec::new();
        lane.open('a', 10);
        lane.open('b', 20);
        assert!(lane.close(30, |w| *w == 'b', &mut closed));
        assert!(lane.close(40, |w| *w == 'a', &mut closed));
        assert_eq!(
            closed,
            vec![piece('b', 20, 30, false, false), piece('a', 10, 40, false, false)]
        );
    }

    #[test]
    fn closing_an_outer_slice_cuts_and_resumes_the_inner_ones() {
        // a: [10 ────── 30]
        // b:     [20 ──────── 50]   becomes [20 ─ 30][30 ─ 50]
        let mut lane = Lane::new();
        let mut closed = Vec::new();
        lane.open('a', 10);
        lane.open('b', 20);
        assert!(lane.close(30, |w| *w == 'a', &mut closed));
        assert!(lane.close(50, |w| *w == 'b', &mut closed));
        assert_eq!(
            closed,
            vec![
                piece('b', 20, 30, false, true),
                piece('a', 10, 30, false, false),
                piece('b', 30, 50, true, false),
            ]
        );
    }

    #[test]
    fn the_lane_clock_never_goes_back() {
        let mut lane = Lane::new();
        let mut closed = Vec::new();
        lane.open('a', 100);
        lane.open('b', 90);
        assert!(lane.close(80, |w| *w == 'b', &mut closed));
        assert!(!lane.close(85, |w| *w == 'z', &mut closed));
        lane.close_all(70, &mut closed);
        assert_eq!(
            closed,
            vec![piece('b', 100, 100, false, false), piece('a', 100, 100, false, false)]
        );
    }
}
