//! The live page as a [`Sink`]: each frame becomes a chart point (voices grouped as the mapping
//! groups them, named as in the console legend) with its alarms, and the rendered sound streams
//! to the page's audio. Its options, [`ServeArgs`], start the server and open it through
//! [`Output`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gradtone_detect::grouping::{Grouping, GroupingConfig, Voicing};
use gradtone_frame::{AlarmEvent, Frame, Opening, Output, OutputError, Report, Sink, SinkError};

use crate::{ServeOptions, Server, Token};

/// A started [`Server`] fed by the pipeline.
pub struct ServeSink {
    server: Server,
    config: GroupingConfig,
    grouping: Option<Grouping>,
    linger: f64,
    stop: Arc<AtomicBool>,
    report: Report,
    names: Vec<String>,
    values: Vec<f64>,
}

impl ServeSink {
    /// Feeds `server`, grouping values into voices by `config` (as the `cents`/`depth`
    /// mappings do). When the run finishes the page stays up `linger` seconds (forever when
    /// infinite) or until `stop` is raised (Ctrl-C); that it lingers is said through `report`.
    pub fn new(
        server: Server,
        config: GroupingConfig,
        linger: f64,
        stop: Arc<AtomicBool>,
        report: Report,
    ) -> Self {
        ServeSink {
            server,
            config,
            grouping: None,
            linger,
            stop,
            report,
            names: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The address the page is served on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }
}

impl Sink for ServeSink {
    fn describe(&self) -> String {
        format!("live page {}", self.server.url())
    }

    fn audio(&mut self, step: u64, samples: &[f32]) -> Result<(), SinkError> {
        self.server.push_audio(step, samples);
        Ok(())
    }

    fn frame(&mut self, frame: &Frame, alarms: &[AlarmEvent]) -> Result<(), SinkError> {
        let names = frame.values.iter().map(|v| v.name.as_str());
        self.values.clear();
        self.values.extend(frame.values.iter().map(|v| v.value));
        if frame.values.len() > self.config.max_voices {
            if !self.grouping.as_ref().is_some_and(|g| g.matches(names)) {
                let names: Vec<&str> = frame.values.iter().map(|v| v.name.as_str()).collect();
                let g = Grouping::new(&names, &self.config);
                self.names = g.legend().iter().map(|(n, _)| n.clone()).collect();
                self.grouping = Some(g);
            }
            if let Some(g) = &self.grouping {
                self.values = g.aggregate(&self.values);
            }
        } else if self.grouping.is_some()
            || self.names.len() != frame.values.len()
            || !self
                .names
                .iter()
                .zip(&frame.values)
                .all(|(a, b)| *a == b.name)
        {
            self.grouping = None;
            self.names = frame.values.iter().map(|v| v.name.clone()).collect();
        }
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let loss = frame.losses.first().map(|l| (l.name.as_str(), l.value));
        self.server
            .push_point(frame.step, loss, &names, &self.values);
        for e in alarms {
            self.server.push_alarm(e.step, e.kind.name(), &e.message);
        }
        Ok(())
    }

    // A page nobody watches must not fail the run.
    fn essential(&self) -> bool {
        false
    }

    fn finish(self: Box<Self>) -> Result<String, SinkError> {
        self.server.finish();
        let url = self.server.url().to_string();
        if self.linger > 0.0 {
            let until = if self.linger.is_finite() {
                format!("for {} s more", self.linger)
            } else {
                "until Ctrl-C".into()
            };
            (self.report)(&format!(
                "run finished, outputs final; still serving {url} {until} (Ctrl-C to stop)"
            ));
            // A linger too long for a `Duration` or an `Instant` (1e300 s) is forever.
            let deadline = Duration::try_from_secs_f64(self.linger)
                .ok()
                .and_then(|d| Instant::now().checked_add(d));
            while !self.stop.load(Ordering::SeqCst) && deadline.is_none_or(|d| Instant::now() < d) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let st = self.server.stats();
        self.server.close();
        Ok(format!(
            "{url} (served {} browser{})",
            st.clients_total,
            if st.clients_total == 1 { "" } else { "s" }
        ))
    }
}

/// The live page's options (`--serve` and its companions).
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ServeArgs {
    // The doc is the flag's --help text: `[IP:]PORT` is the value's syntax there, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// Serve a live page (the sound, the chart, the alarms) on [IP:]PORT: 127.0.0.1:8737 when
    /// no value is given, 0 for any free port. Any address but loopback needs a token (a random
    /// one is printed in the URL). Remote use: README "Hear it from anywhere".
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")
    )]
    pub serve: Option<String>,
    /// The token the page's URL must carry (default: none on loopback, random elsewhere).
    #[cfg_attr(feature = "clap", arg(long, value_name = "TOKEN", requires = "serve"))]
    pub serve_token: Option<String>,
    /// Serve without a token (allowed on loopback only).
    #[cfg_attr(
        feature = "clap",
        arg(long, requires = "serve", conflicts_with = "serve_token")
    )]
    pub serve_no_token: bool,
    /// Wait for a browser to open the page before the first step (hear it from the start).
    #[cfg_attr(feature = "clap", arg(long, requires = "serve"))]
    pub serve_wait: bool,
    /// Keep serving this many seconds after the run ends (default 0; `render`: until Ctrl-C).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "SECONDS", requires = "serve")
    )]
    pub serve_linger: Option<f64>,
}

impl<C: Voicing + ?Sized> Output<C> for ServeArgs {
    /// Starts the page's server (and waits for a browser if asked); its address is reported.
    fn open(&self, at: &Opening<'_, C>) -> Result<Option<Box<dyn Sink>>, OutputError> {
        let Some(addr) = &self.serve else {
            return Ok(None);
        };
        let failed = |e: crate::ServeError| OutputError::open("live page", e);
        let addr = crate::parse_addr(addr).map_err(failed)?;
        let mut opts = ServeOptions::new(addr, at.sample_rate, at.channels);
        opts.token = match (&self.serve_token, self.serve_no_token) {
            (Some(t), _) => Token::Given(t.clone()),
            (None, true) => Token::Off,
            (None, false) => Token::Auto,
        };
        opts.title = if at.title.is_empty() {
            "gradtone".into()
        } else {
            at.title.to_string()
        };
        let server = Server::start(opts).map_err(failed)?;
        (at.report)(&format!("serving the live page at {}", server.url()));
        if self.serve_wait {
            (at.report)("waiting for a browser to open it (Ctrl-C to go on without one)…");
            server.wait_for_client(at.stop, None);
            at.stop.store(false, Ordering::SeqCst);
        }
        Ok(Some(Box::new(ServeSink::new(
            server,
            at.config.grouping().clone(),
            self.serve_linger.unwrap_or(0.0),
            Arc::clone(at.stop),
            Arc::clone(at.report),
        ))))
    }

    fn keeps(&self) -> bool {
        self.serve.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServeOptions;

    #[test]
    fn a_linger_too_long_for_a_duration_waits_for_the_stop_flag() {
        let stop = Arc::new(AtomicBool::new(true)); // Ctrl-C already
        for linger in [1e300, f64::MAX, 1e18] {
            let server = Server::start(ServeOptions::new(
                "127.0.0.1:0".parse().expect("an address"),
                44_100,
                1,
            ))
            .expect("serves on loopback");
            let said = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
            let log = Arc::clone(&said);
            let report: Report = Arc::new(move |m: &str| log.lock().unwrap().push(m.into()));
            let sink = ServeSink::new(
                server,
                GroupingConfig::default(),
                linger,
                stop.clone(),
                report,
            );
            let summary = Box::new(sink).finish().expect("finishes");
            assert!(summary.contains("served 0 browsers"), "{summary}");
            // Said through the report, not printed.
            let said = said.lock().unwrap();
            assert_eq!(said.len(), 1, "{said:?}");
            assert!(
                said[0].starts_with("run finished, outputs final; still serving http://127.0.0.1:"),
                "{said:?}"
            );
        }
    }
}
