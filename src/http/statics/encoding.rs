//! Which precompressed sibling of a file (`file.br`, `file.gz`) a client
//! takes, from its `Accept-Encoding` (RFC 9110, 12.5.3).

/// A content coding with a precompressed sibling, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Br,
    Gzip,
}

impl Coding {
    pub(crate) const ALL: [Coding; 2] = [Coding::Br, Coding::Gzip];

    /// The `Content-Encoding` token.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The sibling's file name extension.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gz",
        }
    }
}

/// Whether `accept_encoding` accepts `coding`: named with a weight above
/// zero, or not named while `*` is accepted. (`x-gzip` is gzip, as RFC
/// 9110 says.) Weights only accept or refuse: among accepted codings br
/// is preferred, being smaller, whatever the client's weights.
pub(crate) fn accepts(accept_encoding: &str, coding: Coding) -> bool {
    let mut star = false;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let weight = parts
            .find_map(|p| {
                let (key, value) = p.split_once('=')?;
                (key.trim().eq_ignore_ascii_case("q")).then(|| value.trim().parse::<f32>().ok())?
            })
            .unwrap_or(1.0);
        let named = name.eq_ignore_ascii_case(coding.token())
            || (coding == Coding::Gzip && name.eq_ignore_ascii_case("x-gzip"));
        if named {
            return weight > 0.0;
        }
        if name == "*" {
            star = weight > 0.0;
        }
    }
    star
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_codings_with_weights() {
        assert!(accepts("gzip, deflate, br", Coding::Br));
        assert!(accepts("gzip, deflate, br", Coding::Gzip));
        assert!(accepts("GZIP;q=0.5", Coding::Gzip));
        assert!(accepts("x-gzip", Coding::Gzip));
        assert!(!accepts("gzip", Coding::Br));
        assert!(!accepts("br;q=0, gzip", Coding::Br));
        assert!(!accepts("br; q=0.0", Coding::Br));
        assert!(!accepts("", Coding::Gzip));
        assert!(!accepts("identity", Coding::Gzip));
    }

    #[test]
    fn the_wildcard_covers_codings_not_named() {
        assert!(accepts("*", Coding::Br));
        assert!(!accepts("*;q=0", Coding::Br));
        assert!(!accepts("*, br;q=0", Coding::Br));
        assert!(accepts("br;q=0.1, *;q=0", Coding::Br));
    }
}
