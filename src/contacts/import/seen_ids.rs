//! De-duplication of `id_contacto` within one file, in little memory.

use std::hash::BuildHasher;

/// The `id_contacto` values seen so far in a file, each with the line it was
/// first seen on. A registry export can hold millions of rows, so the ids are
/// packed one after another in one buffer (a two-byte length, then the bytes)
/// and the table keeps only their offsets: about 30 bytes an id, against about
/// 80 in a `HashMap<String, u64>`.
#[derive(Default)]
pub(super) struct SeenIds {
    packed: Vec<u8>,
    table: hashbrown::HashTable<SeenId>,
    hasher: std::hash::RandomState,
}

struct SeenId {
    offset: usize,
    line: u64,
}

impl SeenIds {
    /// Makes room for about `rows` ids at once, so the table is not doubled
    /// (holding old and new copies) again and again while a large file is read.
    pub(super) fn expect(&mut self, rows: u64) {
        let rows = usize::try_from(rows).unwrap_or(usize::MAX);
        let (packed, hasher) = (&self.packed, &self.hasher);
        self.table
            .reserve(rows.saturating_sub(self.table.len()), |seen| {
                hasher.hash_one(Self::id_at(packed, seen.offset))
            });
    }

    fn id_at(packed: &[u8], offset: usize) -> &[u8] {
        let len = usize::from(u16::from_le_bytes([packed[offset], packed[offset + 1]]));
        &packed[offset + 2..offset + 2 + len]
    }

    /// The line `id` was first seen on, or `None` (and `line` is remembered)
    /// if this is its first appearance. Ids longer than 64 KiB are never valid
    /// (the limit is 200 characters), so they are not remembered.
    pub(super) fn first_line(&mut self, id: &str, line: u64) -> Option<u64> {
        let Ok(len) = u16::try_from(id.len()) else {
            return None;
        };
        let hash = self.hasher.hash_one(id.as_bytes());
        let packed = &self.packed;
        if let Some(seen) = self.table.find(hash, |seen| {
            Self::id_at(packed, seen.offset) == id.as_bytes()
        }) {
            return Some(seen.line);
        }
        let offset = self.packed.len();
        self.packed.extend_from_slice(&len.to_le_bytes());
        self.packed.extend_from_slice(id.as_bytes());
        let (packed, hasher) = (&self.packed, &self.hasher);
        self.table
            .insert_unique(hash, SeenId { offset, line }, |seen| {
                hasher.hash_one(Self::id_at(packed, seen.offset))
            });
        None
    }
}
