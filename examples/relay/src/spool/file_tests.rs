//! Segment format: round trip, and every kind of damage detected without a panic.

use std::io::Cursor;
use std::time::SystemTime;

use super::*;

fn env(i: usize, body_len: u64) -> Envelope {
    let mut e = Envelope::new(
        &format!("s{i}@a.example"),
        [format!("r{i}@b.example")],
        SystemTime::now(),
    );
    e.body_len = body_len;
    e
}

/// A segment with three messages and a tombstone; returns its bytes and the message envelopes.
fn sample() -> (Vec<u8>, Vec<(Envelope, Vec<u8>)>) {
    let msgs: Vec<(Envelope, Vec<u8>)> = (0..3)
        .map(|i| {
            let body = format!("Subject: {i}\r\n\r\nbody {i}\r\n")
                .repeat(i + 1)
                .into_bytes();
            (env(i, body.len() as u64), body)
        })
        .collect();
    let jsons: Vec<Vec<u8>> = msgs
        .iter()
        .map(|(e, _)| serde_json::to_vec(e).unwrap())
        .collect();
    let gone = MessageId::parse("abc-1").unwrap();
    let mut records: Vec<OutRecord<'_>> = msgs
        .iter()
        .zip(&jsons)
        .map(|((e, b), j)| OutRecord::Msg {
            id: &e.id,
            envelope: j,
            body: b,
        })
        .collect();
    records.insert(1, OutRecord::Done { seg: 7, id: &gone });
    // Two batches: the first record alone, then the rest.
    let mut out = SEGMENT_MAGIC.to_vec();
    let start = out.len() as u64;
    let (mut offsets, len) = encode_batch(&mut out, start, &records[..1]).unwrap();
    let (more, len) = encode_batch(&mut out, len, &records[1..]).unwrap();
    offsets.extend(more);
    assert_eq!(len, out.len() as u64);
    for ((_, body), off) in msgs.iter().zip(&offsets) {
        let at = usize::try_from(*off).unwrap();
        assert_eq!(&out[at..at + body.len()], &body[..], "offset of the body");
    }
    (out, msgs)
}

#[test]
fn round_trip() {
    let (bytes, msgs) = sample();
    let scan = scan_segment(&mut Cursor::new(&bytes));
    assert_eq!(scan.defect, None);
    assert_eq!(scan.records.len(), 4);
    assert_eq!(
        scan.records[1],
        InRecord::Done {
            seg: 7,
            id: MessageId::parse("abc-1").unwrap()
        }
    );
    let got: Vec<_> = scan
        .records
        .iter()
        .filter_map(|r| match r {
            InRecord::Msg {
                envelope,
                body_offset,
                body_len,
            } => {
                let at = usize::try_from(*body_offset).unwrap();
                let body = bytes[at..at + usize::try_from(*body_len).unwrap()].to_vec();
                Some((envelope.as_ref().clone(), body))
            }
            InRecord::Done { .. } => None,
        })
        .collect();
    assert_eq!(got, msgs);
}

#[test]
fn every_truncation_is_detected_and_keeps_the_records_before_it() {
    let (bytes, _) = sample();
    let full = scan_segment(&mut Cursor::new(&bytes));
    assert_eq!(full.committed_len, bytes.len() as u64);
    // The end of the first batch: the only other clean cut.
    let first_end = bytes.iter().position(|&b| b == b'C').unwrap() + 4;
    for cut in 0..bytes.len() {
        let scan = scan_segment(&mut Cursor::new(&bytes[..cut]));
        if cut == SEGMENT_MAGIC.len() || cut == first_end {
            assert_eq!(scan.defect, None, "a clean cut at {cut}");
            let n = usize::from(cut == first_end);
            assert_eq!(scan.records[..], full.records[..n]);
            continue;
        }
        assert!(scan.defect.is_some(), "cut at {cut} not detected");
        // Only whole batches count.
        let want = if cut < first_end { 0 } else { 1 };
        assert_eq!(scan.records[..], full.records[..want], "cut at {cut}");
        let want_len = if cut < SEGMENT_MAGIC.len() {
            0
        } else if cut < first_end {
            SEGMENT_MAGIC.len()
        } else {
            first_end
        };
        assert_eq!(scan.committed_len, want_len as u64, "cut at {cut}");
    }
}

#[test]
fn every_flipped_byte_is_detected_or_harmless() {
    // A flip anywhere either is reported, or (inside a number's leading text, say) still
    // yields exactly the original records; it never yields different records silently.
    let (bytes, _) = sample();
    let full = scan_segment(&mut Cursor::new(&bytes)).records;
    let mut detected = 0;
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x20;
        let scan = scan_segment(&mut Cursor::new(&b));
        match scan.defect {
            Some(_) => detected += 1,
            None => assert_eq!(scan.records, full, "flip at {i} changed a record silently"),
        }
    }
    assert_eq!(detected, bytes.len(), "every flip is detected");
}

#[test]
fn trailing_garbage_and_a_wrong_count_are_defects() {
    let (mut bytes, _) = sample();
    bytes.extend_from_slice(b"x");
    assert!(matches!(
        scan_segment(&mut Cursor::new(&bytes)).defect,
        Some(SpoolDefect::BadRecord { .. })
    ));
    let (bytes, _) = sample();
    let text = String::from_utf8_lossy(&bytes).replace("C 3\n", "C 2\n");
    let scan = scan_segment(&mut Cursor::new(text.as_bytes()));
    assert!(matches!(scan.defect, Some(SpoolDefect::BadRecord { .. })));
    assert_eq!(scan.records.len(), 1, "the first batch stands");
}

#[test]
fn an_empty_segment_is_clean() {
    let scan = scan_segment(&mut Cursor::new(SEGMENT_MAGIC));
    assert_eq!(scan.defect, None);
    assert!(scan.records.is_empty());
}

#[test]
fn a_valid_checksum_over_bad_json_is_an_envelope_defect() {
    let id = MessageId::parse("abc-2").unwrap();
    let json = b"{\"id\":#}";
    let mut bytes = SEGMENT_MAGIC.to_vec();
    encode_batch(
        &mut bytes,
        10,
        &[OutRecord::Msg {
            id: &id,
            envelope: json,
            body: b"",
        }],
    )
    .unwrap();
    assert!(matches!(
        scan_segment(&mut Cursor::new(&bytes)).defect,
        Some(SpoolDefect::Envelope { line: 1, .. })
    ));
}

#[test]
fn an_envelope_of_another_message_is_an_id_mismatch() {
    let e = env(1, 0);
    let json = serde_json::to_vec(&e).unwrap();
    let other = MessageId::parse("abc-3").unwrap();
    let mut bytes = SEGMENT_MAGIC.to_vec();
    encode_batch(
        &mut bytes,
        10,
        &[OutRecord::Msg {
            id: &other,
            envelope: &json,
            body: b"",
        }],
    )
    .unwrap();
    assert!(matches!(
        scan_segment(&mut Cursor::new(&bytes)).defect,
        Some(SpoolDefect::IdMismatch { .. })
    ));
}

#[test]
fn segment_names_round_trip_and_reject_lookalikes() {
    assert_eq!(parse_segment_name(&segment_name(0x2a)), Some(0x2a));
    for bad in [
        "2a.seg",
        "000000000000002A.seg",
        "000000000000002a.msg",
        "x000000000000002.seg",
    ] {
        assert_eq!(parse_segment_name(bad), None, "{bad}");
    }
}
