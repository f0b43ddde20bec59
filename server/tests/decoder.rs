//! The request decoder at the extremes a hostile client can send: counts and
//! lengths at and past every integer width, negative and signed ones, and
//! nan/inf, binary and 64 KB arguments. The outcomes are Redis 7's, checked
//! side by side (`fuzz/seeds/decode_request` holds the same inputs for
//! `cargo fuzz`).

use proptest::prelude::*;
use ringkv_server::protocol::{Decoded, ProtocolError, RequestDecoder, RequestLimits};

const OPEN: RequestLimits = RequestLimits {
    max_bulk_len: 512 * 1024 * 1024,
    authenticated: true,
};

/// Decodes requests from the start of `input` until one is incomplete or an
/// error ends the stream: the arguments of each request, then how it ended.
fn decode(input: &[u8], limits: RequestLimits) -> (Vec<Vec<Vec<u8>>>, Result<(), ProtocolError>) {
    let mut decoder = RequestDecoder::new();
    let (mut pos, mut requests) = (0, Vec::new());
    loop {
        match decoder.decode(&input[pos..], limits) {
            Ok(Decoded::Incomplete) => return (requests, Ok(())),
            Ok(Decoded::Request { consumed }) => {
                assert!(consumed > 0 && pos + consumed <= input.len());
                let args = decoder.args(&input[pos..]);
                requests.push(args.iter().map(<[u8]>::to_vec).collect());
                pos += consumed;
            }
            Err(e) => return (requests, Err(e)),
        }
    }
}

fn ping() -> Vec<Vec<u8>> {
    vec![b"PING".to_vec()]
}

#[test]
fn zero_and_negative_multibulk_counts_are_empty_requests() {
    for count in ["0", "-1", "-2147483648", "-9223372036854775808"] {
        let input = format!("*{count}\r\n*1\r\n$4\r\nPING\r\n");
        let (requests, end) = decode(input.as_bytes(), OPEN);
        assert_eq!(requests, [vec![], ping()], "*{count}");
        assert_eq!(end, Ok(()));
    }
}

#[test]
fn multibulk_counts_past_i32_max_or_i64_are_invalid() {
    for count in [
        "2147483648",
        "4611686018427387903",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "1e3",
        "nan",
        "inf",
        "",
        " 1",
        "1 ",
    ] {
        let input = format!("*{count}\r\n");
        assert_eq!(
            decode(input.as_bytes(), OPEN).1,
            Err(ProtocolError::InvalidMultibulkLength),
            "*{count}"
        );
    }
}

#[test]
fn the_largest_multibulk_count_waits_for_its_arguments() {
    let mut decoder = RequestDecoder::new();
    let input = b"*2147483647\r\n$4\r\nPING\r\n";
    assert_eq!(decoder.decode(input, OPEN), Ok(Decoded::Incomplete));
    assert!(decoder.in_request());
    // Nothing announced yet beyond the next header.
    assert_eq!(decoder.wanted(), 0);
}

#[test]
fn negative_and_oversized_bulk_lengths_are_invalid() {
    for len in [
        "-1",
        "-2",
        "-2147483648",
        "-9223372036854775808",
        "536870913",
        "2147483648",
        "1000000000000000",
        "4611686018427387903",
        "9223372036854775807",
        "9223372036854775808",
        "nan",
        "inf",
        "",
        "4 ",
    ] {
        let input = format!("*1\r\n${len}\r\n");
        assert_eq!(
            decode(input.as_bytes(), OPEN).1,
            Err(ProtocolError::InvalidBulkLength),
            "${len}"
        );
    }
}

#[test]
fn non_canonical_numbers_in_headers_are_invalid_as_in_redis() {
    // Redis's string2ll takes no plus sign, leading zero or negative zero.
    for count in ["+1", "01", "-0"] {
        let input = format!("*{count}\r\n$4\r\nPING\r\n");
        assert_eq!(
            decode(input.as_bytes(), OPEN).1,
            Err(ProtocolError::InvalidMultibulkLength),
            "*{count}"
        );
        let input = format!("*1\r\n${count}\r\n");
        assert_eq!(
            decode(input.as_bytes(), OPEN).1,
            Err(ProtocolError::InvalidBulkLength),
            "${count}"
        );
    }
}

#[test]
fn the_largest_allowed_bulk_is_announced_exactly() {
    let mut decoder = RequestDecoder::new();
    let input = b"*1\r\n$536870912\r\n";
    assert_eq!(decoder.decode(input, OPEN), Ok(Decoded::Incomplete));
    assert_eq!(decoder.wanted(), input.len() + 536_870_912 + 2);
}

#[test]
fn nan_inf_binary_and_empty_arguments_decode_as_they_are() {
    let args: [&[u8]; 7] = [
        b"nan",
        b"inf",
        b"-inf",
        b"+inf",
        b"",
        b"\0\r\n\xff",
        b"$-1\r\n",
    ];
    let mut input = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        input.extend(format!("${}\r\n", a.len()).bytes());
        input.extend(a);
        input.extend(b"\r\n");
    }
    let (requests, end) = decode(&input, OPEN);
    assert_eq!(end, Ok(()));
    assert_eq!(requests, [args.map(<[u8]>::to_vec).to_vec()]);
}

#[test]
fn inline_requests_up_to_64_kb_decode_and_longer_ones_are_refused() {
    let arg = vec![b'x'; 64 * 1024 - 8];
    let mut line = b"ECHO ".to_vec();
    line.extend(&arg);
    line.extend(b"\r\n");
    assert_eq!(decode(&line, OPEN).0, [vec![b"ECHO".to_vec(), arg]]);

    let mut long = b"ECHO ".to_vec();
    long.resize(64 * 1024 + 10, b'x');
    assert_eq!(decode(&long, OPEN).1, Err(ProtocolError::TooBigInline));
    long.extend(b"\r\n");
    assert_eq!(decode(&long, OPEN).1, Err(ProtocolError::TooBigInline));
}

#[test]
fn inline_escapes_and_quotes_at_the_edges() {
    let (requests, _) = decode(b"ECHO \"a\\x00b\" '\\'' \"\\xzz\"\r\n", OPEN);
    assert_eq!(
        requests,
        [vec![
            b"ECHO".to_vec(),
            b"a\0b".to_vec(),
            b"'".to_vec(),
            b"xzz".to_vec()
        ]]
    );
    assert_eq!(
        decode(b"ECHO \"a\"b\r\n", OPEN).1,
        Err(ProtocolError::UnbalancedQuotes)
    );
}

/// Headers a fuzzer should try: every extreme as a count or a length.
fn extreme_number() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "0",
        "-1",
        "-2",
        "2147483647",
        "-2147483648",
        "2147483648",
        "4611686018427387903",
        "-4611686018427387904",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "1000000000000000",
        "-1000000000000000",
        "nan",
        "inf",
        "-inf",
        "+inf",
        "",
        "65536",
    ])
    .prop_map(String::from)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Any mix of extreme counts and lengths, with any limits, decodes or fails
    /// cleanly, and never announces more than the limit allows.
    #[test]
    fn extreme_headers_never_panic_or_overreach(
        count in extreme_number(),
        lens in proptest::collection::vec(extreme_number(), 0..4),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
        max_bulk_len in prop::sample::select(vec![1u64 << 20, 512 << 20, i64::MAX as u64]),
        authenticated in any::<bool>(),
    ) {
        let mut input = format!("*{count}\r\n").into_bytes();
        for len in &lens {
            input.extend(format!("${len}\r\n").bytes());
            input.extend(&tail);
        }
        let limits = RequestLimits { max_bulk_len, authenticated };
        let mut decoder = RequestDecoder::new();
        let mut pos = 0;
        while let Ok(Decoded::Request { consumed }) = decoder.decode(&input[pos..], limits) {
            prop_assert!(consumed > 0 && pos + consumed <= input.len());
            pos += consumed;
        }
        prop_assert!(decoder.wanted() as u64 <= input.len() as u64 + max_bulk_len + 2);
    }
}
