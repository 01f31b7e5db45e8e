//! Logging and panics, both through the host (never through WASI stdout/stderr).

use crate::__private::bindings::damson::workflow::host;
use crate::__private::bindings::damson::workflow::types::LogLevel;

/// The severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

#[doc(hidden)]
pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => LogLevel::Trace,
        Level::Debug => LogLevel::Debug,
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Error => LogLevel::Error,
    };
    host::log(level, message);
}

/// Report panics to the host, which shows the message and location on the EXCEPTED process.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Box<dyn Any>".to_string());
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            host::report_panic(&message, location.as_deref());
        }));
    });
}

/// Log through the host at a level: `damson_guest::log!(Level::Info, "n = {n}")`.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)*) => { $crate::__private::log($level, &::std::format!($($arg)*)) };
}
/// Log at trace level through the host.
#[macro_export]
macro_rules! trace { ($($arg:tt)*) => { $crate::log!($crate::Level::Trace, $($arg)*) }; }
/// Log at debug level through the host.
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log!($crate::Level::Debug, $($arg)*) }; }
/// Log at info level through the host.
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log!($crate::Level::Info, $($arg)*) }; }
/// Log at warn level through the host.
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log!($crate::Level::Warn, $($arg)*) }; }
/// Log at error level through the host.
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log!($crate::Level::Error, $($arg)*) }; }
