//! Snowflake-style `msg_key`s: 41 bits of Unix milliseconds, 10 bits of node id, 12 bits of
//! sequence. 63 bits in all, so every key is a positive i64 and sorts by time.

use std::sync::Mutex;

pub const NODE_BITS: u32 = 10;
pub const SEQ_BITS: u32 = 12;
pub const MAX_NODES: u16 = 1 << NODE_BITS;
/// The first millisecond a key can't express (2039-09-07): 41 bits of Unix milliseconds.
pub const MAX_KEY_MS: i64 = 1 << (63 - NODE_BITS - SEQ_BITS);
/// Bits below a key's milliseconds.
const MS_SHIFT: u32 = NODE_BITS + SEQ_BITS;

/// The Unix millisecond a key was made in.
pub fn key_ms(key: u64) -> i64 {
    (key >> MS_SHIFT) as i64
}

/// How far keys move in `ms` milliseconds (the first key of millisecond `ms`, counted from
/// the epoch); negative counts as 0.
pub fn ms_keys(ms: i64) -> u64 {
    (ms.max(0) as u64) << MS_SHIFT
}

#[derive(Debug)]
pub struct KeyGen {
    node: u64,
    state: Mutex<(i64, u64)>,
}

impl KeyGen {
    pub fn new(node: u16) -> Self {
        KeyGen {
            node: u64::from(node % MAX_NODES),
            state: Mutex::new((0, 0)),
        }
    }

    pub fn node(&self) -> u16 {
        self.node as u16
    }

    /// The next key for a message stored at `now_ms`. Never goes backwards, even when the
    /// (test) clock does: the millisecond part only moves forward and borrows from the future
    /// when a millisecond's 4096 sequence numbers run out.
    pub fn next(&self, now_ms: i64) -> u64 {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last_ms, seq) = *st;
        let (ms, seq) = if now_ms > last_ms {
            (now_ms, 0)
        } else if seq + 1 < (1 << SEQ_BITS) {
            (last_ms, seq + 1)
        } else {
            (last_ms + 1, 0)
        };
        *st = (ms, seq);
        ms_keys(ms) | (self.node << SEQ_BITS) | seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_increase_and_carry_the_node() {
        let g = KeyGen::new(5);
        let mut last = 0;
        for i in 0..10_000 {
            let k = g.next(1_700_000_000_000 + i / 5000);
            assert!(k > last);
            assert_eq!((k >> SEQ_BITS) & 0x3ff, 5);
            assert!(k < (1u64 << 63));
            last = k;
        }
        // The clock going back does not make keys go back.
        assert!(g.next(1_600_000_000_000) > last);
    }

    #[test]
    fn a_key_tells_its_millisecond() {
        let g = KeyGen::new(1023);
        let k = g.next(1_700_000_000_123);
        assert_eq!(key_ms(k), 1_700_000_000_123);
        // The first key of a millisecond, and the keys of 5 s.
        assert_eq!(ms_keys(1_700_000_000_123), k & !((1 << 22) - 1));
        assert_eq!(key_ms(k - ms_keys(5000)), 1_699_999_995_123);
        assert_eq!(ms_keys(-1), 0);
    }
}
