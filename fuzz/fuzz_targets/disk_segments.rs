//! Whatever a store's folder holds in a segment file and its index file: opening the
//! store either succeeds or refuses with an error, never a panic; reading the function
//! gives lines, gaps and the history mark only; and a line written after opening is read
//! back last.
//!
//! The input is cut into chunks: most are written as records with a correct length and
//! checksum (so that the payload's parser sees arbitrary bytes), some as raw bytes (so that
//! damage and torn records are met); the rest, behind a valid header and checksum, is
//! the segment's index.
#![no_main]

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::Utc;
use faas_logs::store::{DiskConfig, DiskStore, Fsync};
use faas_logs::{Event, LogSink, Message, Request};
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;

fn header(magic: &[u8; 8]) -> Vec<u8> {
    let mut h = magic.to_vec();
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    h
}

fn files(data: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut segment = header(b"FAASLOGS");
    let mut rest = data;
    while let Some((&head, tail)) = rest.split_first() {
        if head == 0xff {
            // The rest is the index.
            let mut index = header(b"FAASLIDX");
            index.extend_from_slice(tail);
            let crc = crc32c::crc32c(&index);
            index.extend_from_slice(&crc.to_le_bytes());
            return (segment, Some(index));
        }
        let len = usize::from(head & 0x7f).min(tail.len());
        let (chunk, after) = tail.split_at(len);
        if head & 0x80 == 0 {
            let size = (chunk.len() as u32).to_le_bytes();
            let crc = crc32c::crc32c_append(crc32c::crc32c(&size), chunk);
            segment.extend_from_slice(&size);
            segment.extend_from_slice(&crc.to_le_bytes());
        }
        segment.extend_from_slice(chunk);
        rest = after;
    }
    (segment, None)
}

fuzz_target!(|data: &[u8]| {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let root = base.join(format!("faas-logs-fuzz-{}-{run}", std::process::id()));
    let folder = root.join("functions/openfaas-fn/f");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(root.join("faas-logs-store"), "faas-logs store format 1\n").unwrap();
    let (segment, index) = files(data);
    std::fs::write(folder.join("00000000000000000000.seg"), &segment).unwrap();
    if let Some(index) = index {
        std::fs::write(folder.join("00000000000000000000.idx"), index).unwrap();
    }
    let config = DiskConfig::default().with_fsync(Fsync::Never);
    if let Ok(store) = DiskStore::open(&root, config) {
        futures::executor::block_on(async {
            let read_all = || async {
                let mut reader = store.read(&Request::new("f")).unwrap();
                let mut last = None;
                while let Some(event) = reader.next().await {
                    match event {
                        Ok(Event::Message(m)) => last = Some(m),
                        Ok(Event::Gap { .. } | Event::HistoryEnd) => {}
                        Ok(other) => panic!("unexpected event {other:?}"),
                        Err(_) => break, // a broken stream, told as such
                    }
                }
                last
            };
            let _ = read_all().await;
            let line = Message::new("f", Utc::now(), "appended").with_instance("f-1");
            store.write(line.clone()).await.unwrap();
            let last = read_all().await.expect("the line just written");
            assert_eq!(last.text, "appended");
        });
    }
    let _ = std::fs::remove_dir_all(&root);
});
