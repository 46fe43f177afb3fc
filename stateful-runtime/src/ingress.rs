//! TEMPORARY placeholder, replaced by the real ingress log on merge.
#![allow(missing_docs, dead_code)]
use crate::store::StoreError;
pub struct IngressRecord {
    pub seq: u64,
    pub timestamp_ms: u64,
    pub lambda: u16,
    pub key: Vec<u8>,
    pub handler: u16,
    pub args: Vec<u8>,
    pub idempotency_key: Option<String>,
}
pub struct OpenReport {
    pub records: u64,
    pub truncated_bytes: u64,
}
pub struct IngressLog;
impl IngressLog {
    pub fn open(_p: &std::path::Path) -> Result<(IngressLog, OpenReport), StoreError> {
        todo!()
    }
    pub fn append(&self, _r: IngressRecord) -> Result<u64, StoreError> {
        todo!()
    }
    pub fn sync(&self) -> Result<(), StoreError> {
        todo!()
    }
    pub fn read_from(&self, _s: u64) -> Result<Vec<IngressRecord>, StoreError> {
        todo!()
    }
}
