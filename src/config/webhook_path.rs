//! The form webhook paths are matched in (RFC 3986 §6.2.2): a flow's configured path and
//! each request's path are brought to it, so `/hooks/café`, `/hooks/caf%C3%A9` and
//! `/hooks/caf%c3%a9` are one path, as `/hooks/%6Frders` and `/hooks/orders` are.

use std::borrow::Cow;

/// Characters a path holds as they are (RFC 3986 §3.3: unreserved, sub-delims, `:`, `@`
/// and the `/` between segments).
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// `path` with percent-encodings of unreserved characters decoded, the others' hex digits
/// in upper case, and every other character a path may not hold as it is (non-ASCII,
/// `"<>\^`{|}`) percent-encoded from its UTF-8; borrowed when it is already so. A `%`
/// not followed by two hex digits is an error naming the character it is.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, String> {
    let bytes = path.as_bytes();
    if bytes.iter().all(|&b| plain(b)) {
        return Ok(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                let at = path[..i].chars().count() + 1;
                return Err(format!("the `%` at character {at} is not followed by two hex digits"));
            };
            if unreserved(v) {
                out.push(v as char);
            } else {
                out.push_str(&format!("%{v:02X}"));
            }
            i += 3;
        } else if plain(b) {
            out.push(b as char);
            i += 1;
        } else {
            out.push_str(&format!("%{b:02X}"));
            i += 1;
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn equivalent_paths_are_one() {
        for (given, want) in [
            ("/hooks/orders", "/hooks/orders"),
            ("/hooks/%6Frders", "/hooks/orders"),
            ("/hooks/café", "/hooks/caf%C3%A9"),
            ("/hooks/caf%c3%a9", "/hooks/caf%C3%A9"),
            ("/a%20b", "/a%20b"),
            ("/a%2fb", "/a%2Fb"),
            ("/a{b}|c", "/a%7Bb%7D%7Cc"),
            ("/v1/x:y@z;k=v,w", "/v1/x:y@z;k=v,w"),
            ("/%7Euser", "/~user"),
        ] {
            assert_eq!(normalize(given).unwrap(), want, "{given}");
            assert_eq!(normalize(want).unwrap(), want, "{want} stays");
        }
    }

    #[test]
    fn a_broken_escape_is_named() {
        assert_eq!(
            normalize("/é/%zz").unwrap_err(),
            "the `%` at character 4 is not followed by two hex digits"
        );
        assert!(normalize("/a%4").is_err());
    }
}
