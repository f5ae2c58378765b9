//! What this process sees of everyone's registrations: nodes read out of response packets,
//! and the view that watches are computed from.
//!
//! The view learns nodes from announcements (unsolicited responses: registrations, and
//! goodbyes with TTL 0) and keeps each for its record TTL. Before a node's TTL runs out
//! (at 80 % and 90 % of it, as RFC 6762 §5.2 has queriers do) the registry asks for the
//! instance again; a live owner answers and the node stays, a dead one does not and the node
//! is deleted when its TTL ends.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::time::Instant;

use crate::registry::{Action, Change, Node, Service};

use super::txt;
use super::wire::{Data, Message, Record};
use super::zone::Names;

/// One node as a packet described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sighting {
    /// `<node id>.<service>.<domain>` as sent.
    pub instance: String,
    /// The service, holding just this node.
    pub service: Service,
    /// The smallest TTL of its SRV and TXT records; 0 is a goodbye.
    pub ttl: u32,
}

/// Reads the nodes a response describes. Nodes of another domain, listing entries and nodes
/// whose records are incomplete or malformed are skipped (with a debug line for the latter).
pub(crate) fn sightings(msg: &Message, names: &Names) -> Vec<Sighting> {
    let mut out = Vec::new();
    for srv in &msg.records {
        let Data::Srv { port, target } = &srv.data else {
            continue;
        };
        let instance = &srv.name;
        if ends_with_ci(instance, &names.listing_suffix) {
            continue;
        }
        let Some(txt_rec) = find(msg, instance, |d| matches!(d, Data::Txt(_))) else {
            tracing::debug!(%instance, "mdns: skipping an instance without a TXT record");
            continue;
        };
        let Data::Txt(bytes) = &txt_rec.data else {
            continue;
        };
        let txt = match txt::decode(bytes) {
            Ok(txt) => txt,
            Err(e) => {
                tracing::debug!(%instance, error = %e, "mdns: skipping an instance with a bad TXT");
                continue;
            }
        };
        if txt.service.is_empty() {
            tracing::debug!(%instance, "mdns: skipping an instance whose TXT names no service");
            continue;
        }
        let suffix = names.instance_suffix(&txt.service);
        let Some(id) = strip_suffix_ci(instance, &suffix) else {
            // Another domain, or a TXT that disagrees with the name.
            tracing::debug!(%instance, service = %txt.service, "mdns: skipping a foreign instance");
            continue;
        };
        let Some(ip) = address(msg, target, instance) else {
            tracing::debug!(%instance, "mdns: skipping an instance without an address");
            continue;
        };
        out.push(Sighting {
            instance: instance.clone(),
            ttl: srv.ttl.min(txt_rec.ttl),
            service: Service {
                name: txt.service,
                version: txt.version,
                metadata: Default::default(),
                endpoints: txt.endpoints,
                nodes: vec![Node {
                    id: id.to_owned(),
                    address: SocketAddr::new(ip, *port).to_string(),
                    metadata: txt.metadata,
                }],
            },
        });
    }
    out
}

/// The service names a `_services` answer lists.
pub(crate) fn listed(msg: &Message, names: &Names, out: &mut Vec<String>) {
    for rec in &msg.records {
        if rec.ttl == 0 {
            continue;
        }
        let entry = match &rec.data {
            Data::Ptr(target) if rec.name.eq_ignore_ascii_case(&names.listing) => target,
            Data::Srv { .. } => &rec.name,
            _ => continue,
        };
        if let Some(name) = strip_suffix_ci(entry, &names.listing_suffix)
            && !name.is_empty()
            && !out.iter().any(|n| n == name)
        {
            out.push(name.to_owned());
        }
    }
}

/// The node's IP: the A (preferred, as go-micro) or AAAA record of the SRV target, or else of
/// the instance name.
fn address(msg: &Message, target: &str, instance: &str) -> Option<IpAddr> {
    let mut v6 = None;
    for name in [target, instance] {
        for rec in &msg.records {
            if !rec.name.eq_ignore_ascii_case(name) {
                continue;
            }
            match rec.data {
                Data::A(ip) => return Some(IpAddr::V4(ip)),
                Data::Aaaa(ip) => {
                    v6.get_or_insert(IpAddr::V6(ip));
                }
                _ => {}
            }
        }
    }
    v6
}

fn find<'m>(msg: &'m Message, name: &str, kind: impl Fn(&Data) -> bool) -> Option<&'m Record> {
    msg.records
        .iter()
        .find(|r| kind(&r.data) && r.name.eq_ignore_ascii_case(name))
}

fn ends_with_ci(name: &str, suffix: &str) -> bool {
    strip_suffix_ci(name, suffix).is_some()
}

/// `name` without `suffix`, compared ignoring ASCII case.
pub(crate) fn strip_suffix_ci<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    let split = name.len().checked_sub(suffix.len())?;
    let (head, tail) = (name.get(..split)?, name.get(split..)?);
    tail.eq_ignore_ascii_case(suffix).then_some(head)
}

/// How a sighting reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// An unsolicited response: someone registered (again) or said goodbye.
    Announcement,
    /// An answer to one of our refresh queries.
    Answer,
}

/// A node the view holds.
#[derive(Debug)]
struct Seen {
    /// The instance name as its owner sends it (go-micro matches questions case-sensitively).
    instance: String,
    service: Service,
    ttl: Duration,
    expires: Instant,
    /// When to ask for the node again, and how many times we already did since last seen.
    refresh_at: Instant,
    refreshes: u8,
}

/// The nodes seen, keyed by lowercase instance name.
#[derive(Debug, Default)]
pub(crate) struct View {
    nodes: HashMap<String, Seen>,
    /// No node needs attention before this (`None`: no node at all).
    wake: Option<Instant>,
}

impl View {
    /// Takes in a sighting; returns the change it makes, if any.
    ///
    /// An announcement of a new node is a `Create`, of a known node an `Update` (a registration
    /// again, as the memory registry reports it); an answer to a refresh query only refreshes
    /// the node, or is an `Update` if the node changed. A goodbye is a `Delete`, also for a
    /// node this view never saw (a client may know it from a lookup).
    pub(crate) fn observe(
        &mut self,
        sighting: Sighting,
        source: Source,
        now: Instant,
    ) -> Option<Change> {
        let key = sighting.instance.to_ascii_lowercase();
        if sighting.ttl == 0 {
            let service = self
                .nodes
                .remove(&key)
                .map_or(sighting.service, |seen| seen.service);
            return Some(Change {
                action: Action::Delete,
                service,
            });
        }
        let ttl = Duration::from_secs(u64::from(sighting.ttl));
        let fresh = Seen {
            instance: sighting.instance,
            service: sighting.service,
            ttl,
            expires: now + ttl,
            refresh_at: now + ttl.mul_f32(0.8),
            refreshes: 0,
        };
        let action = match self.nodes.get(&key) {
            None => Some(Action::Create),
            Some(old) if old.service != fresh.service => Some(Action::Update),
            Some(_) if source == Source::Announcement => Some(Action::Update),
            Some(_) => None,
        };
        let change = action.map(|action| Change {
            action,
            service: fresh.service.clone(),
        });
        self.wake = Some(
            self.wake
                .map_or(fresh.refresh_at, |w| w.min(fresh.refresh_at)),
        );
        self.nodes.insert(key, fresh);
        change
    }

    /// When [`View::sweep`] next has something to do.
    pub(crate) fn wake(&self) -> Option<Instant> {
        self.wake
    }

    /// Drops the nodes whose TTL ran out (returned as `Delete`s) and lists the instances to ask
    /// for again.
    pub(crate) fn sweep(&mut self, now: Instant, refresh: &mut Vec<String>) -> Vec<Change> {
        let mut gone = Vec::new();
        let mut wake: Option<Instant> = None;
        self.nodes.retain(|_, seen| {
            if seen.expires <= now {
                tracing::debug!(instance = %seen.instance, "mdns: node expired");
                gone.push(Change {
                    action: Action::Delete,
                    service: std::mem::take(&mut seen.service),
                });
                return false;
            }
            if seen.refresh_at <= now && seen.refreshes < 2 {
                refresh.push(seen.instance.clone());
                seen.refreshes += 1;
                seen.refresh_at = now + seen.ttl.mul_f32(0.1);
            }
            let next = if seen.refreshes < 2 {
                seen.refresh_at.min(seen.expires)
            } else {
                seen.expires
            };
            wake = Some(wake.map_or(next, |w| w.min(next)));
            true
        });
        self.wake = wake;
        gone
    }

    /// How many nodes the view holds.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::registry::mdns::wire::{self, Rec, RecData};

    fn names() -> Names {
        Names::new("micro").expect("names")
    }

    fn txt_for(service: &str) -> Vec<String> {
        txt::encode(&txt::MdnsTxt {
            service: service.into(),
            version: "v1".into(),
            metadata: [("k".to_owned(), "v".to_owned())].into(),
            ..Default::default()
        })
        .expect("encode")
    }

    /// A response as go-micro's server sends it: SRV target = host name, A on the host name.
    fn go_style(instance: &str, service: &str, ttl: u32) -> Message {
        let txt = txt_for(service);
        let bytes = wire::response(
            0,
            None,
            &[
                Rec {
                    name: instance,
                    ttl,
                    data: RecData::Srv(8080, "myhost"),
                },
                Rec {
                    name: "myhost",
                    ttl,
                    data: RecData::A(Ipv4Addr::new(127, 0, 0, 9)),
                },
                Rec {
                    name: instance,
                    ttl,
                    data: RecData::Txt(&txt),
                },
            ],
        )
        .expect("build");
        wire::parse(&bytes).expect("parse")
    }

    #[test]
    fn reads_go_micro_announcements() {
        let seen = sightings(
            &go_style("greeter-1.go.micro.greeter.micro", "go.micro.greeter", 120),
            &names(),
        );
        assert_eq!(seen.len(), 1);
        let s = &seen[0];
        assert_eq!(s.ttl, 120);
        assert_eq!(s.service.name, "go.micro.greeter");
        assert_eq!(s.service.version, "v1");
        assert_eq!(s.service.nodes[0].id, "greeter-1");
        assert_eq!(s.service.nodes[0].address, "127.0.0.9:8080");
        assert_eq!(s.service.nodes[0].metadata["k"], "v");
    }

    #[test]
    fn skips_other_domains_and_mismatched_names() {
        assert!(sightings(&go_style("n.greeter.local", "greeter", 1), &names()).is_empty());
        assert!(sightings(&go_style("n.other.micro", "greeter", 1), &names()).is_empty());
    }

    #[test]
    fn lists_ptr_and_srv_entries_once() {
        let bytes = wire::response(
            0,
            None,
            &[
                Rec {
                    name: "_services.micro",
                    ttl: 120,
                    data: RecData::Ptr("a.b._services.micro"),
                },
                Rec {
                    name: "a.b._services.micro",
                    ttl: 120,
                    data: RecData::Srv(9999, "host"),
                },
                Rec {
                    name: "gone._services.micro",
                    ttl: 0,
                    data: RecData::Srv(9999, "host"),
                },
            ],
        )
        .expect("build");
        let mut out = Vec::new();
        listed(&wire::parse(&bytes).expect("parse"), &names(), &mut out);
        assert_eq!(out, vec!["a.b".to_owned()]);
    }

    #[test]
    fn view_creates_updates_refreshes_and_expires() {
        let mut view = View::default();
        let now = Instant::now();
        let sighting =
            |ttl| sightings(&go_style("n.greeter.micro", "greeter", ttl), &names()).remove(0);

        let c = view
            .observe(sighting(10), Source::Announcement, now)
            .expect("create");
        assert_eq!(c.action, Action::Create);
        let c = view
            .observe(sighting(10), Source::Announcement, now)
            .expect("update");
        assert_eq!(c.action, Action::Update);
        assert!(view.observe(sighting(10), Source::Answer, now).is_none());

        let mut refresh = Vec::new();
        assert!(
            view.sweep(now + Duration::from_secs(7), &mut refresh)
                .is_empty()
        );
        assert!(refresh.is_empty());
        assert!(
            view.sweep(now + Duration::from_secs(8), &mut refresh)
                .is_empty()
        );
        assert_eq!(refresh, vec!["n.greeter.micro".to_owned()]);
        assert_eq!(view.wake(), Some(now + Duration::from_secs(9)));
        // An answer pushes the end out again.
        assert!(
            view.observe(sighting(10), Source::Answer, now + Duration::from_secs(8))
                .is_none()
        );
        assert!(
            view.sweep(now + Duration::from_secs(12), &mut refresh)
                .is_empty()
        );
        let gone = view.sweep(now + Duration::from_secs(18), &mut refresh);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].action, Action::Delete);
        assert_eq!(gone[0].service.nodes[0].id, "n");
        assert_eq!(view.len(), 0);
        assert_eq!(view.wake(), None);
    }

    #[test]
    fn goodbyes_delete_known_and_unknown_nodes() {
        let mut view = View::default();
        let now = Instant::now();
        let s = sightings(&go_style("n.greeter.micro", "greeter", 5), &names()).remove(0);
        view.observe(s, Source::Announcement, now);
        let bye = sightings(&go_style("N.greeter.micro", "greeter", 0), &names()).remove(0);
        let c = view
            .observe(bye.clone(), Source::Announcement, now)
            .expect("delete");
        assert_eq!(c.action, Action::Delete);
        assert_eq!(view.len(), 0);
        let c = view
            .observe(bye, Source::Announcement, now)
            .expect("delete");
        assert_eq!(c.action, Action::Delete);
        assert_eq!(c.service.nodes[0].id, "N");
    }

    #[test]
    fn strips_suffixes_ignoring_case_and_char_boundaries() {
        assert_eq!(strip_suffix_ci("a.B.Micro", ".b.micro"), Some("a"));
        assert_eq!(strip_suffix_ci("micro", ".micro"), None);
        assert_eq!(strip_suffix_ci("é.micro", "\u{a9}.micro"), None);
    }
}
