//! W3C Trace Context (`traceparent`, <https://www.w3.org/TR/trace-context/>): read from a
//! producer's request headers, carried on the fill job, the `ready` event and the analysis
//! job, so one request's work can be followed across processes by its trace id.

/// The header, as the W3C spec names it.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// A `traceparent` value: `00-<trace id, 32 hex>-<parent span id, 16 hex>-<flags, 2 hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: String,
    pub span_id: String,
    pub flags: u8,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl TraceParent {
    /// Parses a header value; `None` for anything the spec says to ignore (wrong lengths,
    /// upper-case hex, all-zero ids, version `ff`). Later versions are read by their first
    /// four fields, as the spec asks.
    pub fn parse(value: &str) -> Option<TraceParent> {
        let mut parts = value.trim().split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if !is_hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        if !is_hex(trace_id, 32) || !is_hex(span_id, 16) || !is_hex(flags, 2) {
            return None;
        }
        if trace_id.bytes().all(|b| b == b'0') || span_id.bytes().all(|b| b == b'0') {
            return None;
        }
        Some(TraceParent {
            trace_id: trace_id.to_string(),
            span_id: span_id.to_string(),
            flags: u8::from_str_radix(flags, 16).ok()?,
        })
    }

    /// A new trace from 16 + 8 random bytes (sampled).
    pub fn start(random: [u8; 24]) -> TraceParent {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut trace = random;
        // The spec forbids all-zero ids.
        trace[15] |= 1;
        trace[23] |= 1;
        TraceParent {
            trace_id: hex(&trace[..16]),
            span_id: hex(&trace[16..]),
            flags: 1,
        }
    }

    /// The same trace, from a span of our own (`span`: 8 random bytes).
    pub fn child(&self, span: [u8; 8]) -> TraceParent {
        let mut span = span;
        span[7] |= 1;
        TraceParent {
            trace_id: self.trace_id.clone(),
            span_id: span.iter().map(|x| format!("{x:02x}")).collect(),
            flags: self.flags,
        }
    }

    /// The header value.
    pub fn header(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, self.flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specs_examples_and_what_it_says_to_ignore() {
        let tp =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(tp.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.span_id, "00f067aa0ba902b7");
        assert_eq!(tp.flags, 1);
        assert_eq!(
            tp.header(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        // A later version: its first four fields.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what")
                .is_some()
        );
        let started = TraceParent::start([0; 24]);
        assert!(TraceParent::parse(&started.header()).is_some());
        let child = tp.child([7; 8]);
        assert_eq!(child.trace_id, tp.trace_id);
        assert_ne!(child.span_id, tp.span_id);
    }
}
