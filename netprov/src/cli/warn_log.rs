//! The default logging, warnings only, with its formatter built at the first warning.
//!
//! Why: tracing-subscriber's formatter keeps its spans in a registry whose first table
//! (4096 pointers, zeroed) is allocated when the formatter is built. Built up front, as
//! `fmt().try_init()` does, that was ~35,000 instructions and 8 page faults of every
//! netprov process, 7 % of a no-op apply's own instructions (callgrind,
//! docs/benchmarks.md round 9), for a process that almost never warns. Here nothing is
//! built until an event at WARN or ERROR arrives.
//!
//! Spans are INFO and below in netprov, so at this level they are never enabled and
//! never reach the formatter; whatever does is forwarded to it as is.

use std::sync::OnceLock;

use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

type Inner = Box<dyn Subscriber + Send + Sync>;

/// A subscriber of WARN and ERROR that builds the real one (`build`) when it is first
/// needed.
pub(crate) struct WarnOnly<F> {
    build: F,
    inner: OnceLock<Inner>,
}

impl<F: Fn() -> Inner> WarnOnly<F> {
    pub(crate) fn new(build: F) -> Self {
        Self {
            build,
            inner: OnceLock::new(),
        }
    }

    fn inner(&self) -> &Inner {
        self.inner.get_or_init(&self.build)
    }

    #[cfg(test)]
    fn built(&self) -> bool {
        self.inner.get().is_some()
    }
}

impl<F: Fn() -> Inner + Send + Sync + 'static> Subscriber for WarnOnly<F> {
    fn register_callsite(&self, m: &'static Metadata<'static>) -> Interest {
        if self.enabled(m) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, m: &Metadata<'_>) -> bool {
        *m.level() <= Level::WARN
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::WARN)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.inner().new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.inner().record(span, values)
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.inner().record_follows_from(span, follows)
    }

    fn event(&self, event: &Event<'_>) {
        self.inner().event(event)
    }

    fn enter(&self, span: &Id) {
        self.inner().enter(span)
    }

    fn exit(&self, span: &Id) {
        self.inner().exit(span)
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.inner().clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.inner().try_close(id)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_formatter_is_built_at_the_first_warning_and_prints_only_warnings() {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = Arc::new(WarnOnly::new(move || -> Inner {
            let w = out.clone();
            Box::new(
                tracing_subscriber::fmt()
                    .with_writer(move || w.clone())
                    .with_ansi(false)
                    .with_max_level(Level::WARN)
                    .finish(),
            )
        }));
        let d = tracing::Dispatch::from(sub.clone());
        tracing::dispatcher::with_default(&d, || {
            let span = tracing::info_span!("apply", id = "web");
            let _g = span.enter();
            tracing::info!("not shown");
            tracing::debug!("not shown either");
            assert!(!sub.built(), "built before any warning");
            tracing::warn!(pass = 2, "the kernel still differs");
            assert!(sub.built());
            tracing::error!("and an error");
            tracing::info!("still not shown");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("WARN") && lines[0].contains("the kernel still differs"));
        assert!(lines[0].contains("pass=2"), "{text}");
        assert!(lines[1].contains("ERROR") && lines[1].contains("and an error"));
    }
}
