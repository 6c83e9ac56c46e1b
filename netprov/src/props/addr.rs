//! Addresses, gateways and MACs as written in the properties file.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::model::MacAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
    fn of(ip: &IpAddr) -> Self {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// An interface address: `addr[/prefix]`, no prefix meaning /32 or /128 (NixUnits).
pub fn interface_addr(s: &str, family: Family) -> Result<IpNetwork, String> {
    let net: IpNetwork = s.parse().map_err(|_| {
        format!(
            "{s:?} is not an {} address (expected e.g. {})",
            family.name(),
            example(family)
        )
    })?;
    let ip = net.ip();
    if Family::of(&ip) != family {
        return Err(format!(
            "{s:?} is an {} address; this field takes {} (e.g. {})",
            Family::of(&ip).name(),
            family.name(),
            example(family)
        ));
    }
    usable(&ip).map_err(|why| format!("{s:?} is {why}; use a unicast address"))?;
    Ok(net)
}

fn example(family: Family) -> &'static str {
    match family {
        Family::V4 => "10.0.0.2/31",
        Family::V6 => "2001:db8::2/127",
    }
}

/// Rejects addresses that cannot be an interface's own or a gateway: the unspecified
/// address, multicast, loopback (127/8, ::1: the kernel keeps them to `lo`), the IPv4
/// limited broadcast, and IPv6 addresses that embed an IPv4 one — IPv4-mapped
/// `::ffff:0:0/96` (a socket-API notation for IPv4 peers, never on the wire: the kernel
/// would put `::ffff:224.0.0.1` on a link) and IPv4-compatible `::/96` (deprecated by
/// RFC 4291, used only by the kernel's sit tunnels).
pub fn usable(ip: &IpAddr) -> Result<(), &'static str> {
    if let IpAddr::V6(v6) = ip {
        let s = v6.segments();
        if s[..5] == [0; 5] && s[5] == 0xffff {
            return Err(
                "an IPv4-mapped IPv6 address (::ffff:a.b.c.d, put IPv4 addresses in IPv4 fields)",
            );
        }
        if s[..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback() {
            return Err("an IPv4-compatible IPv6 address (::a.b.c.d, deprecated by RFC 4291)");
        }
    }
    if ip.is_unspecified() {
        Err("the unspecified address")
    } else if ip.is_multicast() {
        Err("a multicast address")
    } else if ip.is_loopback() {
        Err("a loopback address")
    } else if *ip == IpAddr::from([255, 255, 255, 255]) {
        Err("the broadcast address")
    } else {
        Ok(())
    }
}

/// A gateway `addr` or `addr%if` (the zone names the output interface).
pub fn gateway(s: &str, family: Family) -> Result<(IpAddr, Option<&str>), String> {
    let (addr, dev) = match s.split_once('%') {
        Some((a, d)) => (a, Some(d)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| {
        format!(
            "{s:?} is not an {} gateway (expected an address, optionally with %interface)",
            family.name()
        )
    })?;
    if Family::of(&ip) != family {
        return Err(format!(
            "{s:?} is an {} address; this field takes {}",
            Family::of(&ip).name(),
            family.name()
        ));
    }
    usable(&ip).map_err(|why| format!("{s:?} is {why}, not a gateway"))?;
    Ok((ip, dev))
}

pub fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// `aa:bb:cc:dd:ee:ff` (or `-` separated); unicast and not all-zero.
pub fn mac(s: &str) -> Result<MacAddr, String> {
    let bad = || format!("{s:?} is not a MAC address (expected e.g. 02:00:00:00:00:01)");
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if m == [0; 6] {
        return Err(format!("{s:?} is the all-zero MAC"));
    }
    if m[0] & 1 == 1 {
        return Err(format!(
            "{s:?} is a multicast MAC (lowest bit of the first byte set); an interface needs a unicast MAC"
        ));
    }
    Ok(MacAddr(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_default_to_host() {
        assert_eq!(interface_addr("10.0.2.2", Family::V4).unwrap().prefix(), 32);
        assert_eq!(
            interface_addr("2001:db8::1", Family::V6).unwrap().prefix(),
            128
        );
        assert_eq!(
            interface_addr("10.0.0.2/31", Family::V4).unwrap().prefix(),
            31
        );
    }

    #[test]
    fn wrong_family_and_unusable() {
        let e = interface_addr("2001:db8::1/64", Family::V4).unwrap_err();
        assert!(
            e.contains("is an IPv6 address; this field takes IPv4"),
            "{e}"
        );
        for bad in ["0.0.0.0", "127.0.0.1/8", "224.0.0.1", "10.0.0.1/33", "x"] {
            assert!(interface_addr(bad, Family::V4).is_err(), "{bad}");
        }
        for bad in [
            "::1",
            "::",
            "ff02::1",
            "::ffff:224.0.0.1",
            "::ffff:10.0.0.1/128",
            "::10.0.0.1",
        ] {
            assert!(interface_addr(bad, Family::V6).is_err(), "{bad}");
        }
        assert!(gateway("::ffff:10.0.0.1", Family::V6).is_err());
        assert!(interface_addr("64:ff9b::10.0.0.1", Family::V6).is_ok());
    }

    #[test]
    fn gateways_with_zone() {
        let (ip, dev) = gateway("fe80::1%lan", Family::V6).unwrap();
        assert!(is_link_local(&ip));
        assert_eq!(dev, Some("lan"));
        assert!(gateway("10.0.0.1", Family::V6).is_err());
    }

    #[test]
    fn macs() {
        assert_eq!(
            mac("02:00:5E:00:01:0c").unwrap().to_string(),
            "02:00:5e:00:01:0c"
        );
        assert!(mac("00:00:00:00:00:00").is_err());
        assert!(mac("01:00:5e:00:00:01").is_err());
        assert!(mac("02:00:00:00:01").is_err());
    }
}
