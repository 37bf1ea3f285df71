//! Arbitrary bytes as a write-ahead log segment: replay never panics, keeps only records whose
//! checksums hold, repairs the segment so that a second replay is clean, and appends work after.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obs_core::wal::{SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SEGMENT_VERSION, Wal, WalError, WalOptions};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    // Half the inputs get a valid header, so the fuzzer spends its time on records.
    let mut segment = Vec::new();
    if data.first().is_some_and(|b| b & 1 == 0) {
        segment.extend_from_slice(SEGMENT_MAGIC);
        segment.extend_from_slice(&SEGMENT_VERSION.to_le_bytes());
        segment.extend_from_slice(&1u64.to_le_bytes());
        segment.extend_from_slice(&data[1..]);
    } else {
        segment.extend_from_slice(data);
    }
    std::fs::write(dir.path().join("00000000000000000001.wal"), &segment).expect("write");

    let mut first = Vec::new();
    let opened = Wal::open(dir.path(), WalOptions::named("fuzz"), |lsn, payload| {
        first.push((lsn, payload.to_vec()));
        Ok(())
    });
    let (wal, report) = match opened {
        Ok(opened) => opened,
        // A segment claiming a newer format is refused and left alone, never repaired away.
        Err(WalError::NewerVersion { .. }) => {
            assert_eq!(std::fs::read(dir.path().join("00000000000000000001.wal")).expect("read"), segment);
            return;
        }
        Err(err) => panic!("replay must repair, not fail: {err}"),
    };
    assert_eq!(report.records as usize, first.len());
    assert!(segment.len() >= SEGMENT_HEADER_LEN || first.is_empty());
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let next = runtime.block_on(wal.append(b"after".to_vec())).expect("append after replay");
    assert_eq!(next, first.last().map_or(1, |(lsn, _)| lsn + 1));
    wal.close();

    let mut second = Vec::new();
    let (_wal, report) = Wal::open(dir.path(), WalOptions::named("fuzz"), |lsn, payload| {
        second.push((lsn, payload.to_vec()));
        Ok(())
    })
    .expect("second replay");
    assert!(report.corruptions.is_empty(), "repair must leave a clean log: {:?}", report.corruptions);
    assert_eq!(&second[..first.len()], &first[..]);
    assert_eq!(second.last().map(|(_, payload)| payload.as_slice()), Some(&b"after"[..]));
});
