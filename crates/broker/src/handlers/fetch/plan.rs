//! What a Fetch answer is before it is written: the encoded fields, and
//! the record bytes as slices of segment files for `sendfile`.

use bytes::Bytes;
use kafka_protocol::messages::FetchResponse;
use sluice_storage::{FileSlice, StorageError};

/// A Fetch response whose record bytes still live in segment files.
///
/// `response` is complete except that every partition listed in `files`
/// has empty `records`; the bytes of `files[i].slice` go there. The writer
/// sends the encoded fields, then the file bytes (zero copy), then the rest.
#[derive(Debug, Clone)]
pub struct FetchPlan {
    pub response: FetchResponse,
    pub files: Vec<FileRecords>,
}

/// Records of one response partition, as a slice of a segment file.
#[derive(Clone)]
pub struct FileRecords {
    /// Index into `response.responses`.
    pub topic: usize,
    /// Index into that topic's `partitions`.
    pub partition: usize,
    pub slice: FileSlice,
}

impl std::fmt::Debug for FileRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRecords")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("position", &self.slice.position)
            .field("len", &self.slice.len)
            .finish()
    }
}

impl FetchPlan {
    /// A plan without file records (error answers, empty fetches).
    pub fn message(response: FetchResponse) -> Self {
        FetchPlan {
            response,
            files: Vec::new(),
        }
    }

    /// Total record bytes that come from files.
    pub fn file_bytes(&self) -> u64 {
        self.files.iter().map(|f| u64::from(f.slice.len)).sum()
    }

    /// The same response with the record bytes read into memory: what a
    /// copying broker would encode. Used when a file has no descriptor to
    /// `sendfile` from, and by tests that compare both paths.
    pub fn into_materialized(mut self) -> Result<FetchResponse, StorageError> {
        for f in &self.files {
            let bytes = f.slice.read_to_vec()?;
            if let Some(p) = self
                .response
                .responses
                .get_mut(f.topic)
                .and_then(|t| t.partitions.get_mut(f.partition))
            {
                p.records = Some(Bytes::from(bytes));
            }
        }
        Ok(self.response)
    }
}
