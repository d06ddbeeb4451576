//! The backup's gzip stream as independent members that say their own size, so a
//! reader can cut it into members without inflating it and inflate them in parallel.
//!
//! Each 1 MiB block of the dump is one gzip member (RFC 1952) whose header carries an
//! extra field, subfield `BL` (4 bytes, little-endian): the member's total size in
//! bytes, header and trailer included (BGZF's idea, with room for blocks over 64 KiB).
//! `gunzip`, Python's gzip and every other reader skip extra fields, so the file stays
//! ordinary gzip. Backups written before the field, or by anything else, are inflated
//! on one thread as before.

use std::io::{Read, Write};

use flate2::write::DeflateEncoder;
use flate2::Compression;

/// The fixed part of a framed member's header: magic, CM, FLG, MTIME, XFL, OS, XLEN,
/// and the `BL` subfield.
const HEADER: usize = 10 + 2 + 8;
/// A framed member is never larger than this (a 1 MiB block that does not compress
/// stays about its size): a bigger claimed size is damage, not a reason to allocate.
const LARGEST: usize = 4 << 20;

/// One gzip member holding `block`, framed with its own size.
pub fn framed(block: &[u8], level: Compression) -> std::io::Result<Vec<u8>> {
    let mut deflate = DeflateEncoder::new(Vec::with_capacity(block.len() / 2 + 64), level);
    deflate.write_all(block)?;
    let body = deflate.finish()?;
    let mut crc = flate2::Crc::new();
    crc.update(block);
    let total = HEADER + body.len() + 8;
    let mut member = Vec::with_capacity(total);
    // ID1 ID2 CM=deflate FLG=FEXTRA, MTIME 0, XFL 0, OS 255 (unknown).
    member.extend_from_slice(&[0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255]);
    member.extend_from_slice(&8u16.to_le_bytes()); // XLEN
    member.extend_from_slice(b"BL");
    member.extend_from_slice(&4u16.to_le_bytes());
    member.extend_from_slice(&(total as u32).to_le_bytes());
    member.extend_from_slice(&body);
    member.extend_from_slice(&crc.sum().to_le_bytes());
    member.extend_from_slice(&(block.len() as u32).to_le_bytes());
    Ok(member)
}

/// The total size a framed member's header claims, or `None` for any other header.
fn member_size(header: &[u8]) -> Option<usize> {
    let [0x1f, 0x8b, 8, 4, _, _, _, _, _, _, 8, 0, b'B', b'L', 4, 0, a, b, c, d] = header else {
        return None;
    };
    let size = u32::from_le_bytes([*a, *b, *c, *d]) as usize;
    (HEADER + 8..=LARGEST).contains(&size).then_some(size)
}

/// Inflates the gzip stream `stream` and hands its bytes, in order, to `each` (which
/// may stop wanting them by returning false; inflating goes on, every byte must
/// decode). A framed stream is inflated on up to `workers` threads, memory bounded to a
/// few members each; any other on this one. Returns the inflated byte count.
pub fn inflate(
    mut stream: impl Read + Send,
    workers: usize,
    mut each: impl FnMut(&[u8]) -> bool,
) -> std::io::Result<u64> {
    let mut first = [0u8; HEADER];
    let got = read_full(&mut stream, &mut first)?;
    let head = &first[..got];
    if member_size(head).is_none() {
        // Not framed (an older backup): one thread, as it was written.
        let mut gunzip =
            flate2::read::MultiGzDecoder::new(std::io::Cursor::new(head).chain(stream));
        let mut buf = vec![0u8; 256 * 1024];
        let mut raw = 0u64;
        let mut wanted = true;
        loop {
            let n = gunzip.read(&mut buf)?;
            if n == 0 {
                return Ok(raw);
            }
            raw += n as u64;
            wanted = wanted && each(&buf[..n]);
        }
    }
    parallel(head.to_vec(), stream, workers.max(1), each)
}

fn parallel(
    first: Vec<u8>,
    mut stream: impl Read + Send,
    workers: usize,
    mut each: impl FnMut(&[u8]) -> bool,
) -> std::io::Result<u64> {
    std::thread::scope(|scope| {
        let (mut members, mut inflated) =
            super::in_order::spawn(scope, workers, |member: Vec<u8>| inflate_member(&member));
        // Cuts the stream into members; ends with the stream, or the first damage.
        let splitter = scope.spawn(move || -> std::io::Result<()> {
            let mut header = first;
            let mut n = 0u64;
            while !header.is_empty() {
                n += 1;
                let Some(size) = member_size(&header) else {
                    return Err(damaged(format!(
                        "the header of gzip member {n} is not one ballast wrote"
                    )));
                };
                let mut member = header;
                member.resize(size, 0);
                let got = read_full(&mut stream, &mut member[HEADER..])?;
                if got < size - HEADER {
                    return Err(damaged(format!("gzip member {n} is cut short")));
                }
                if members.send(member).is_err() {
                    return Ok(()); // the consumer stopped at an error of its own
                }
                header = vec![0u8; HEADER];
                let got = read_full(&mut stream, &mut header)?;
                header.truncate(got);
            }
            Ok(())
        });
        let mut raw = 0u64;
        let mut wanted = true;
        let mut failed: Option<std::io::Error> = None;
        for (n, bytes) in (&mut inflated).enumerate() {
            match bytes {
                Ok(bytes) => {
                    raw += bytes.len() as u64;
                    wanted = wanted && each(&bytes);
                }
                Err(e) => {
                    failed = Some(damaged(format!("gzip member {}: {e}", n + 1)));
                    break;
                }
            }
        }
        let all_back = inflated.all_back();
        // Dropped (on an error) it stops the workers, then the splitter.
        drop(inflated);
        let split = splitter
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the gzip splitter panicked")));
        match (failed, split) {
            // A read that failed is the cause: the storage, not the backup.
            (_, Err(e)) => Err(e),
            (Some(e), Ok(())) => Err(e),
            (None, Ok(())) if !all_back => Err(damaged("a gzip member went missing".into())),
            (None, Ok(())) => Ok(raw),
        }
    })
}

/// One member inflated; its CRC and size checked by the decoder.
fn inflate_member(member: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1 << 20);
    let mut gunzip = flate2::read::GzDecoder::new(member);
    gunzip.read_to_end(&mut out)?;
    Ok(out)
}

fn damaged(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Reads until `buf` is full or the stream ends; how many bytes it got.
fn read_full(stream: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn framed_stream(blocks: &[Vec<u8>]) -> Vec<u8> {
        blocks
            .iter()
            .flat_map(|b| framed(b, Compression::new(2)).unwrap())
            .collect()
    }

    #[test]
    fn framed_members_are_ordinary_gzip() {
        let blocks = [data(1 << 20), data(1000), Vec::new()];
        let stream = framed_stream(&blocks);
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&stream[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, blocks.concat());
    }

    #[test]
    fn a_framed_stream_inflates_in_order_on_several_threads() {
        let blocks: Vec<Vec<u8>> = (0..9).map(|i| data((1 << 20) - i * 1000)).collect();
        let stream = framed_stream(&blocks);
        let mut out = Vec::new();
        let raw = inflate(&stream[..], 3, |b| {
            out.extend_from_slice(b);
            true
        })
        .unwrap();
        assert_eq!(raw as usize, out.len());
        assert_eq!(out, blocks.concat());
    }

    #[test]
    fn an_unframed_stream_inflates_as_before() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&data(300_000)).unwrap();
        let stream = gz.finish().unwrap();
        let mut out = Vec::new();
        inflate(&stream[..], 3, |b| {
            out.extend_from_slice(b);
            false // stops wanting: inflating goes on
        })
        .unwrap();
        assert!(out.len() <= 256 * 1024);
    }

    #[test]
    fn damage_anywhere_is_found() {
        let blocks: Vec<Vec<u8>> = (0..4).map(|_| data(1 << 20)).collect();
        let stream = framed_stream(&blocks);
        for at in [0, 16, stream.len() / 2, stream.len() - 3] {
            let mut damaged = stream.clone();
            damaged[at] ^= 0x40;
            assert!(inflate(&damaged[..], 2, |_| true).is_err(), "byte {at}");
        }
        let cut = &stream[..stream.len() - 10];
        assert!(inflate(cut, 2, |_| true).is_err());
    }
}
