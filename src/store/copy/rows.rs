//! Values as both backends hold them, and the checksum that compares a table
//! on one backend with the same table on the other.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// One column value, whatever the backend: SQLite's storage classes, which
/// every PostgreSQL type aviso uses maps onto (a PostgreSQL boolean is read as
/// the 0 or 1 SQLite stores for it).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    /// What kind of value this is, for error messages.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a real number",
            Value::Text(_) => "a text",
            Value::Bytes(_) => "binary data",
        }
    }

    /// The canonical text form the checksum reads: a tag, and a length where
    /// the value's own text could run into the next one. Floats use Rust's
    /// shortest form that reads back to the same number, so 0.1 stored in
    /// SQLite's REAL and in PostgreSQL's double precision hash alike.
    fn canonical(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"N;"),
            Value::Int(n) => out.extend_from_slice(format!("I{n};").as_bytes()),
            Value::Float(f) => out.extend_from_slice(format!("F{f:?};").as_bytes()),
            Value::Text(s) => {
                out.extend_from_slice(format!("T{}:", s.len()).as_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bytes(b) => {
                out.extend_from_slice(format!("B{}:", b.len()).as_bytes());
                out.extend_from_slice(hex::encode(b).as_bytes());
            }
        }
    }
}

/// A table's row count and content checksum, built a row at a time.
///
/// The checksum is the sum, modulo 2^256, of each row's SHA-256: the same
/// rows give the same sum in any order. PostgreSQL sorts text keys by the
/// database's collation and SQLite by bytes, so the two cannot be made to
/// read a table in the same order cheaply; a sum needs no order and still
/// changes when any value of any row does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TableSum {
    rows: u64,
    /// Little-endian 64-bit limbs.
    sum: [u64; 4],
}

impl TableSum {
    pub(super) fn add(&mut self, row: &[Value]) {
        let mut text = Vec::with_capacity(64 * row.len());
        for value in row {
            value.canonical(&mut text);
        }
        let digest = Sha256::digest(&text);
        let mut carry = 0u128;
        for (i, limb) in self.sum.iter_mut().enumerate() {
            // The digest read as a big-endian number: its last 8 bytes are limb 0.
            let start = 32 - 8 * (i + 1);
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&digest[start..start + 8]);
            let total = u128::from(*limb) + u128::from(u64::from_be_bytes(bytes)) + carry;
            *limb = total as u64;
            carry = total >> 64;
        }
        self.rows += 1;
    }

    pub(super) fn summary(&self) -> Summary {
        let checksum = self
            .sum
            .iter()
            .rev()
            .map(|limb| format!("{limb:016x}"))
            .collect();
        Summary {
            rows: self.rows,
            checksum,
        }
    }
}

/// A table's row count and checksum (64 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub rows: u64,
    pub checksum: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(rows: &[Vec<Value>]) -> Summary {
        let mut s = TableSum::default();
        for row in rows {
            s.add(row);
        }
        s.summary()
    }

    #[test]
    fn the_checksum_ignores_row_order_and_sees_every_value() {
        let a = vec![Value::Int(1), Value::Text("Oaxaca".into()), Value::Null];
        let b = vec![Value::Int(2), Value::Float(0.1), Value::Bytes(vec![0, 255])];
        let both = sum(&[a.clone(), b.clone()]);
        assert_eq!(both, sum(&[b.clone(), a.clone()]));
        assert_eq!(both.rows, 2);
        assert_eq!(both.checksum.len(), 64);
        assert_eq!(sum(&[]).checksum, "0".repeat(64));
        for changed in [
            vec![Value::Int(1), Value::Text("Oaxaca ".into()), Value::Null],
            vec![
                Value::Int(1),
                Value::Text("Oaxaca".into()),
                Value::Text(String::new()),
            ],
            vec![Value::Int(1), Value::Text("Oaxaca".into()), Value::Int(0)],
            vec![Value::Float(1.0), Value::Text("Oaxaca".into()), Value::Null],
        ] {
            assert_ne!(sum(&[changed, b.clone()]), both);
        }
        // A duplicated row is not the same as a single one.
        assert_ne!(sum(&[a.clone(), a.clone(), b.clone()]), both);
    }

    #[test]
    fn values_cannot_run_into_each_other() {
        let one = sum(&[vec![Value::Text("ab".into()), Value::Text("c".into())]]);
        let other = sum(&[vec![Value::Text("a".into()), Value::Text("bc".into())]]);
        assert_ne!(one, other);
        let mut text = Vec::new();
        Value::Float(0.1).canonical(&mut text);
        Value::Float(1e300).canonical(&mut text);
        Value::Int(-7).canonical(&mut text);
        assert_eq!(String::from_utf8(text).unwrap(), "F0.1;F1e300;I-7;");
    }
}
