//! A process's log lines on their way to the store, held within a bound.

use std::collections::VecDeque;

/// How much a log line matters (the WIT world's `log-level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Who wrote a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogSource {
    /// The plugin, through its `log` import.
    Plugin,
    /// The host, about the process (a state change, a kill, an error).
    Host,
}

/// One line of a process's log, not yet stored (the store numbers it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogEntry {
    /// When, in milliseconds since the Unix epoch.
    pub(crate) at_ms: u64,
    pub(crate) level: LogLevel,
    pub(crate) source: LogSource,
    pub(crate) message: String,
}

/// Log lines held until they are stored, never more than a bound: when one more comes, the
/// oldest gives way and is counted, so a plugin that logs without end inside one step holds
/// only as many lines as its process keeps anyway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogBuffer {
    lines: VecDeque<LogEntry>,
    /// Lines that gave way since the buffer was last taken.
    dropped: u64,
}

impl LogBuffer {
    /// Hold `line`, keeping at most `bound` lines.
    pub(crate) fn push(&mut self, line: LogEntry, bound: usize) {
        self.lines.push_back(line);
        self.trim(bound);
    }

    /// Hold the lines of `other` after these (and count what it dropped), keeping at most
    /// `bound` lines.
    pub(crate) fn append(&mut self, other: LogBuffer, bound: usize) {
        self.dropped += other.dropped;
        self.lines.extend(other.lines);
        self.trim(bound);
    }

    /// Count `lines` more as dropped (they were lost on their way to the store).
    pub(crate) fn count_dropped(&mut self, lines: u64) {
        self.dropped += lines;
    }

    /// Whether there is nothing to store: no line, none dropped.
    pub(crate) fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.dropped == 0
    }

    /// The lines held, oldest first, and how many gave way before them; the buffer is empty
    /// after.
    pub(crate) fn take(&mut self) -> (Vec<LogEntry>, u64) {
        let lines = std::mem::take(&mut self.lines).into();
        (lines, std::mem::take(&mut self.dropped))
    }

    fn trim(&mut self, bound: usize) {
        while self.lines.len() > bound {
            self.lines.pop_front();
            self.dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: u64) -> LogEntry {
        LogEntry {
            at_ms: n,
            level: LogLevel::Info,
            source: LogSource::Plugin,
            message: format!("line {n}"),
        }
    }

    #[test]
    fn the_oldest_lines_give_way_and_are_counted() {
        let mut buffer = LogBuffer::default();
        assert!(buffer.is_empty());
        for n in 1..=10 {
            buffer.push(line(n), 3);
        }
        let mut more = LogBuffer::default();
        more.push(line(11), 3);
        more.count_dropped(2);
        buffer.append(more, 3);
        let (lines, dropped) = buffer.take();
        assert_eq!(lines, [line(9), line(10), line(11)]);
        assert_eq!(dropped, 7 + 1 + 2);
        assert!(buffer.is_empty(), "taken");
    }
}
