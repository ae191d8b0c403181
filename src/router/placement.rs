//! Where a row lives: the reference design's placement functions, exactly, so that data placed
//! by the seed's code is found by shardgate.
//!
//! A key is hashed as the MD5 of its text form (integers in plain decimal, text as its UTF-8
//! bytes), read as a 128-bit big-endian unsigned integer.

use md5::{Digest, Md5};

/// A shard key value as the placement functions see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ShardKey {
    Int(i64),
    Text(String),
}

impl ShardKey {
    /// The text the hash is computed over (Python's `str(key)`).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            ShardKey::Int(i) => std::borrow::Cow::Owned(i.to_string()),
            ShardKey::Text(t) => std::borrow::Cow::Borrowed(t),
        }
    }
}

/// How a shard key column's values are compared, which decides when two ways of writing a
/// value are the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// int2/int4/int8 and numeric: `42`, `'042'`, `42.0` and `4.2e1` are the integer 42.
    Integer,
    /// uuid: any spelling PostgreSQL accepts is its canonical lowercase hyphenated text.
    Uuid,
    /// text, varchar and everything else: the text as written.
    Text,
}

impl KeyKind {
    pub fn of(ty: Option<crate::sql::types::PgType>) -> KeyKind {
        use crate::sql::types::PgType;
        match ty {
            Some(PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Numeric) => KeyKind::Integer,
            Some(PgType::Uuid) => KeyKind::Uuid,
            _ => KeyKind::Text,
        }
    }
}

/// The integer a decimal or integer text denotes exactly, if any.
fn integral(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Some(i);
    }
    let f = text.parse::<f64>().ok()?;
    integral_float(f)
}

/// Beyond 2^53 a double no longer says which integer was written.
fn integral_float(f: f64) -> Option<i64> {
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

impl ShardKey {
    /// The one normalization of a key value, wherever it comes from (a literal, a cast, a
    /// text or binary parameter, a COPY field, a row of a split INSERT, an updated key): the
    /// same key always lands on the same shard. `None` for a value that is no key (NULL,
    /// a blob, a fractional number for an integer key).
    pub fn normalize(kind: KeyKind, value: &rusqlite::types::Value) -> Option<ShardKey> {
        use rusqlite::types::Value;
        match (kind, value) {
            (_, Value::Null | Value::Blob(_)) => None,
            (KeyKind::Integer, Value::Integer(i)) => Some(ShardKey::Int(*i)),
            (KeyKind::Integer, Value::Real(f)) => integral_float(*f).map(ShardKey::Int),
            // Not an integer: kept as written (it matches no integer row anywhere).
            (KeyKind::Integer, Value::Text(t)) => Some(
                integral(t)
                    .map(ShardKey::Int)
                    .unwrap_or_else(|| ShardKey::Text(t.clone())),
            ),
            (KeyKind::Uuid, Value::Text(t)) => Some(ShardKey::Text(
                uuid::Uuid::parse_str(t.trim())
                    .map(|u| u.hyphenated().to_string())
                    .unwrap_or_else(|_| t.clone()),
            )),
            (KeyKind::Uuid | KeyKind::Text, Value::Integer(i)) => {
                Some(ShardKey::Text(i.to_string()))
            }
            // SQLite's text form of a double, as a TEXT column stores it.
            (KeyKind::Uuid | KeyKind::Text, Value::Real(f)) => {
                Some(ShardKey::Text(format!("{f:?}")))
            }
            (KeyKind::Text, Value::Text(t)) => Some(ShardKey::Text(t.clone())),
        }
    }
}

impl std::fmt::Display for ShardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShardKey::Int(i) => write!(f, "{i}"),
            ShardKey::Text(t) => write!(f, "'{t}'"),
        }
    }
}

pub fn md5_u128(text: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(text.as_bytes()).into())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("no shard's range holds the key {0}")]
    OutsideRanges(ShardKey),
    #[error("range sharding needs an integer key, not {0}")]
    NotAnInteger(ShardKey),
}

/// A placement function over shards numbered in config order.
#[derive(Debug, Clone)]
pub enum Placement {
    /// `md5(key) mod shards`.
    Hash { shards: usize },
    /// A ring of `md5("<shard name>:<i>")` points; a key goes to the first point strictly
    /// greater than its hash, wrapping to the lowest.
    ConsistentHash { ring: Vec<(u128, usize)> },
    /// Inclusive `[min, max]` per shard; the first shard holding the key wins.
    Range { ranges: Vec<(i64, i64)> },
}

impl Placement {
    pub fn consistent_hash(shard_names: &[String], virtual_nodes: usize) -> Placement {
        let mut points = std::collections::BTreeMap::new();
        for (index, name) in shard_names.iter().enumerate() {
            for i in 0..virtual_nodes {
                // A later shard takes a colliding point, as the seed's dict assignment does.
                points.insert(md5_u128(&format!("{name}:{i}")), index);
            }
        }
        Placement::ConsistentHash {
            ring: points.into_iter().collect(),
        }
    }

    pub fn shard_for(&self, key: &ShardKey) -> Result<usize, PlacementError> {
        match self {
            Placement::Hash { shards } => {
                Ok((md5_u128(&key.text()) % (*shards).max(1) as u128) as usize)
            }
            Placement::ConsistentHash { ring } => {
                let hash = md5_u128(&key.text());
                let at = ring.partition_point(|(point, _)| *point <= hash);
                Ok(ring.get(at).or(ring.first()).map_or(0, |(_, shard)| *shard))
            }
            Placement::Range { ranges } => {
                let ShardKey::Int(value) = key else {
                    return Err(PlacementError::NotAnInteger(key.clone()));
                };
                ranges
                    .iter()
                    .position(|(min, max)| min <= value && value <= max)
                    .ok_or_else(|| PlacementError::OutsideRanges(key.clone()))
            }
        }
    }

    /// The shards that may hold keys in `[low, high]` (either end open when `None`); only a
    /// range placement can narrow this down.
    pub fn shards_for_range(
        &self,
        low: Option<i64>,
        high: Option<i64>,
        shards: usize,
    ) -> Vec<usize> {
        match self {
            Placement::Range { ranges } => ranges
                .iter()
                .enumerate()
                .filter(|(_, (min, max))| {
                    !(high.is_some_and(|h| *min > h) || low.is_some_and(|l| *max < l))
                })
                .map(|(i, _)| i)
                .collect(),
            _ => (0..shards).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        (1..=4).map(|i| format!("shard-{i}")).collect()
    }

    #[test]
    fn golden_vectors_of_the_reference_design() {
        let hash = Placement::Hash { shards: 4 };
        let ring = Placement::consistent_hash(&names(), 150);
        let cases = [
            (ShardKey::Int(1), 3, 2),
            (ShardKey::Int(2), 0, 1),
            (ShardKey::Int(42), 2, 3),
            (ShardKey::Text("alice".into()), 0, 3),
        ];
        for (key, by_hash, by_ring) in cases {
            assert_eq!(hash.shard_for(&key).unwrap(), by_hash, "hash {key}");
            assert_eq!(ring.shard_for(&key).unwrap(), by_ring, "ring {key}");
        }
    }

    /// 2,800 keys placed by an independent implementation (tests/golden/placement.py).
    #[test]
    fn matches_an_independent_implementation() {
        let golden = include_str!("../../tests/golden/placement.tsv");
        let mut checked = 0;
        let mut rings = std::collections::HashMap::new();
        for line in golden.lines().filter(|l| !l.starts_with('#')) {
            let fields: Vec<&str> = line.split('\t').collect();
            let [count, kind, key, by_hash, by_ring] = fields[..] else {
                panic!("bad golden line {line:?}");
            };
            let count: usize = count.parse().unwrap();
            let names: Vec<String> = (1..=count).map(|i| format!("shard-{i}")).collect();
            let key = match kind {
                "int" => ShardKey::Int(key.parse().unwrap()),
                _ => ShardKey::Text(key.to_string()),
            };
            let hash = Placement::Hash { shards: count };
            let ring = rings
                .entry(count)
                .or_insert_with(|| Placement::consistent_hash(&names, 150));
            assert_eq!(names[hash.shard_for(&key).unwrap()], by_hash, "hash {key}");
            assert_eq!(names[ring.shard_for(&key).unwrap()], by_ring, "ring {key}");
            checked += 1;
        }
        assert!(checked > 2800);
    }

    #[test]
    fn ranges_are_inclusive_and_never_guess() {
        let range = Placement::Range {
            ranges: vec![(1, 1000), (1001, 2000)],
        };
        assert_eq!(range.shard_for(&ShardKey::Int(1000)).unwrap(), 0);
        assert_eq!(range.shard_for(&ShardKey::Int(1001)).unwrap(), 1);
        assert!(range.shard_for(&ShardKey::Int(0)).is_err());
        assert!(range.shard_for(&ShardKey::Text("a".into())).is_err());
        assert_eq!(range.shards_for_range(Some(990), Some(1010), 2), [0, 1]);
        assert_eq!(range.shards_for_range(Some(1500), None, 2), [1]);
        assert_eq!(range.shards_for_range(None, Some(5), 2), [0]);
    }
}
