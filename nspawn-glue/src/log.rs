//! Logging for a generator: syslog and the journal are not up yet when generators run
//! (systemd.generator(7)), so messages go to /dev/kmsg. On a terminal, or when
//! `SYSTEMD_LOG_TARGET=console` (the variable systemd's own generators honour for
//! debugging), they go to stderr instead.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};

const TAG: &str = "netprov-systemd-generator";

/// Kernel log levels used here (the `<N>` prefix of a /dev/kmsg record).
#[derive(Debug, Clone, Copy)]
pub enum Level {
    Err = 3,
    Warning = 4,
    Notice = 5,
}

pub fn log(level: Level, msg: &str) {
    let console = std::io::stderr().is_terminal()
        || matches!(
            std::env::var("SYSTEMD_LOG_TARGET").as_deref(),
            Ok("console" | "console-prefixed")
        );
    if !console {
        // One write() per record: /dev/kmsg takes each write as one message.
        let record = format!("<{}>{TAG}: {msg}\n", level as u8);
        if let Ok(mut kmsg) = OpenOptions::new().write(true).open("/dev/kmsg") {
            if kmsg.write_all(record.as_bytes()).is_ok() {
                return;
            }
        }
    }
    eprintln!("{TAG}: {msg}");
}
