//! Core ML's weight file (`weights/weight.bin`, MIL blob storage version 2): a 64-byte header
//! (blob count, version), then per blob a 64-byte record (sentinel 0xDEADBEEF, data type, size,
//! data offset) followed by the data, each record starting on a 64-byte boundary. Operations
//! point at a blob by the offset of its record.

pub const FILE_REFERENCE: &str = "@model_path/weights/weight.bin";

const ALIGN: usize = 64;
const SENTINEL: u32 = 0xDEAD_BEEF;

/// Blob data types (MIL storage's own numbering, not the protobuf's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobType {
    Float32 = 2,
    Int8 = 4,
}

pub struct BlobWriter {
    bytes: Vec<u8>,
    count: u32,
}

impl Default for BlobWriter {
    fn default() -> Self {
        Self {
            bytes: vec![0; ALIGN],
            count: 0,
        }
    }
}

impl BlobWriter {
    /// Appends one blob; returns the offset operations refer to it by.
    pub fn add(&mut self, kind: BlobType, data: &[u8]) -> u64 {
        self.bytes
            .resize(self.bytes.len().next_multiple_of(ALIGN), 0);
        let record = self.bytes.len();
        let mut header = [0u8; ALIGN];
        header[0..4].copy_from_slice(&SENTINEL.to_le_bytes());
        header[4..8].copy_from_slice(&(kind as u32).to_le_bytes());
        header[8..16].copy_from_slice(&(data.len() as u64).to_le_bytes());
        header[16..24].copy_from_slice(&((record + ALIGN) as u64).to_le_bytes());
        self.bytes.extend_from_slice(&header);
        self.bytes.extend_from_slice(data);
        self.count += 1;
        record as u64
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.bytes[0..4].copy_from_slice(&self.count.to_le_bytes());
        self.bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
        self.bytes
    }
}

/// The data of the blob whose record is at `offset`, checked: what a reader of the file sees.
pub fn read(file: &[u8], offset: u64) -> Result<(BlobType, &[u8]), String> {
    let at = usize::try_from(offset).map_err(|_| "offset too large")?;
    let record = file
        .get(at..at + ALIGN)
        .ok_or_else(|| format!("no blob record at {offset}"))?;
    let word =
        |r: std::ops::Range<usize>| u64::from_le_bytes(record[r].try_into().unwrap_or([0; 8]));
    if u32::from_le_bytes(record[0..4].try_into().unwrap_or([0; 4])) != SENTINEL {
        return Err(format!("no blob sentinel at {offset}"));
    }
    let kind = match u32::from_le_bytes(record[4..8].try_into().unwrap_or([0; 4])) {
        2 => BlobType::Float32,
        4 => BlobType::Int8,
        other => return Err(format!("blob at {offset} has unknown type {other}")),
    };
    let (size, start) = (word(8..16) as usize, word(16..24) as usize);
    let data = file
        .get(start..start + size)
        .ok_or_else(|| format!("blob at {offset} runs past the end of the file"))?;
    Ok((kind, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_aligned_and_read_back() {
        let mut writer = BlobWriter::default();
        let a: Vec<u8> = (1..=5u8).collect();
        let b = [7u8; 70];
        let first = writer.add(BlobType::Int8, &a);
        let second = writer.add(BlobType::Float32, &b);
        let file = writer.finish();
        assert_eq!(
            (first, second),
            (64, 192),
            "records start on 64-byte boundaries"
        );
        assert_eq!(u32::from_le_bytes(file[0..4].try_into().unwrap()), 2);
        assert_eq!(read(&file, first).unwrap(), (BlobType::Int8, &a[..]));
        assert_eq!(read(&file, second).unwrap(), (BlobType::Float32, &b[..]));
        assert!(read(&file, 0).unwrap_err().contains("sentinel"));
        assert!(read(&file, 4096).is_err());
    }
}
