//! Which peers are proxies whose word on the client is believed
//! (`--forwarded-allow-ips`), and what they may tell: forwarding headers
//! (`--proxy-headers`) and the PROXY protocol preamble (`--proxy-protocol`).

use std::net::IpAddr;

use ipnet::IpNet;

/// The trusted addresses: networks, or every address (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trusted {
    All,
    Networks(Vec<IpNet>),
}

impl Trusted {
    /// Parses `--forwarded-allow-ips` entries: `*`, addresses and CIDR
    /// networks. The first entry that is none of them is returned as the
    /// error.
    pub(crate) fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut networks = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry == "*" {
                return Ok(Self::All);
            }
            let network = match entry.parse::<IpNet>() {
                Ok(network) => network.trunc(),
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(entry.to_owned()),
                },
            };
            networks.push(canonical(network));
        }
        Ok(Self::Networks(networks))
    }

    /// Whether `ip` is trusted; an IPv4 address in IPv6 form (a dual-stack
    /// socket's `::ffff:127.0.0.1`) counts as the IPv4 address.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match self {
            Self::All => true,
            Self::Networks(networks) => {
                let ip = ip.to_canonical();
                networks.iter().any(|net| net.contains(&ip))
            }
        }
    }
}

/// An entry in IPv4-mapped IPv6 form (`::ffff:10.0.0.0/104`) as the IPv4
/// network it is: [`Trusted::contains`] compares peers in IPv4 form.
fn canonical(network: IpNet) -> IpNet {
    match network {
        IpNet::V6(net) if net.prefix_len() >= 96 => match net.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), net.prefix_len() - 96).unwrap_or(network),
            None => network,
        },
        _ => network,
    }
}

/// What trusted proxies may tell the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proxies {
    pub(crate) trusted: Trusted,
    /// Read `Forwarded` and `X-Forwarded-*` from trusted peers.
    pub(crate) headers: bool,
    /// Every TCP connection starts with a PROXY protocol preamble.
    pub(crate) protocol: bool,
}

impl Proxies {
    /// Nothing believed: no headers, no preamble.
    pub(crate) const NONE: Self = Self {
        trusted: Trusted::Networks(Vec::new()),
        headers: false,
        protocol: false,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_networks_and_star() {
        let trusted = Trusted::parse(&["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]).unwrap();
        for yes in ["127.0.0.1", "10.1.2.3", "::1", "fd12::1", "::ffff:10.9.9.9"] {
            assert!(trusted.contains(ip(yes)), "{yes}");
        }
        for no in ["127.0.0.2", "11.0.0.1", "::2", "fe80::1", "::ffff:11.0.0.1"] {
            assert!(!trusted.contains(ip(no)), "{no}");
        }
        assert_eq!(
            Trusted::parse(&["10.0.0.0/8", " * "]).unwrap(),
            Trusted::All
        );
        assert!(Trusted::parse::<&str>(&[]).unwrap() == Trusted::Networks(vec![]));
        // Host bits set in a network are dropped, as nginx's set_real_ip_from does.
        assert!(
            Trusted::parse(&["10.1.2.3/8"])
                .unwrap()
                .contains(ip("10.200.0.1"))
        );
    }

    #[test]
    fn an_ipv4_mapped_entry_matches_ipv4_peers() {
        let trusted = Trusted::parse(&["::ffff:10.0.0.0/104", "::ffff:192.0.2.7"]).unwrap();
        for yes in ["10.1.2.3", "::ffff:10.1.2.3", "192.0.2.7"] {
            assert!(trusted.contains(ip(yes)), "{yes}");
        }
        for no in ["11.0.0.1", "192.0.2.8", "::10.1.2.3"] {
            assert!(!trusted.contains(ip(no)), "{no}");
        }
    }

    #[test]
    fn a_bad_entry_is_named() {
        assert_eq!(
            Trusted::parse(&["127.0.0.1", "localhost"]),
            Err("localhost".into())
        );
        assert_eq!(Trusted::parse(&["10.0.0.0/33"]), Err("10.0.0.0/33".into()));
    }
}
