//! What a person sees: dedupe, trash, purge, retention, collections, conflicts, clock skew.

use ferry_core::{
    Action, Applied, Body, ClipContent, ClipId, CoreError, DataKind, DeviceId, Op, Replica,
    Retention, Scope, State, Strategy,
};
use ferry_protocol::{NamesKey, SyncKey};

const T0: u64 = 1_800_000_000_000;
const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

fn names() -> NamesKey {
    SyncKey::from_bytes([3; 32]).keys().names
}

fn text(s: &str) -> ClipContent {
    ClipContent::Text(s.to_owned())
}

fn device(n: u8) -> Replica {
    Replica::new(DeviceId([n; 16]))
}

/// Delivers every operation in `ops` to `to`.
fn deliver(to: &mut Replica, ops: &[Op]) {
    for op in ops {
        to.apply(op.clone()).unwrap();
    }
}

fn texts(state: &State) -> Vec<String> {
    state
        .history(None, usize::MAX)
        .iter()
        .map(|c| c.content.text().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn copying_the_same_content_again_moves_it_to_the_top() {
    let names = names();
    let mut a = device(1);
    let mut b = device(2);
    let ops_a = vec![
        a.copy(&names, text("one"), T0),
        a.copy(&names, text("two"), T0 + 1),
    ];
    deliver(&mut b, &ops_a);
    let again = b.copy(&names, text("one"), T0 + 2);
    deliver(&mut a, &[again]);
    for r in [&a, &b] {
        assert_eq!(texts(r.state()), ["one", "two"]);
        let newest = r.state().newest().unwrap();
        assert_eq!(
            newest.source(),
            DeviceId([1; 16]),
            "the first copier stays the source"
        );
        assert_eq!(newest.last_used.device, DeviceId([2; 16]));
    }
    assert_eq!(a.state().stats().clips, 2);
}

#[test]
fn the_same_content_copied_on_two_devices_at_once_is_one_clip() {
    let names = names();
    let mut a = device(1);
    let mut b = device(2);
    let op_a = a.copy(&names, text("same"), T0);
    let op_b = b.copy(&names, text("same"), T0);
    deliver(&mut a, &[op_b]);
    deliver(&mut b, &[op_a]);
    assert_eq!(a.state().encode(), b.state().encode());
    assert_eq!(a.state().history(None, 10).len(), 1);
}

#[test]
fn trash_restore_and_purge() {
    let names = names();
    let mut a = device(1);
    a.copy(&names, text("keep"), T0);
    a.copy(&names, text("gone"), T0 + 1);
    let gone = a.state().newest().unwrap().id;
    a.delete(gone, T0 + 2);
    assert_eq!(texts(a.state()), ["keep"]);
    let trash = a.state().trash();
    assert_eq!(trash.len(), 1);
    assert_eq!(trash[0].trashed_at.unwrap().wall_ms(), T0 + 2);
    assert_eq!(a.state().stats().trashed, 1);

    a.restore(gone, T0 + 3);
    assert_eq!(texts(a.state()), ["gone", "keep"]);
    assert!(a.state().trash().is_empty());

    a.delete(gone, T0 + 4);
    a.purge(gone, T0 + 5);
    assert!(a.state().clip(&gone).is_none(), "purged content is dropped");
    assert!(a.state().trash().is_empty());

    // Copying the content again after the purge brings it back, fresh.
    a.copy(&names, text("gone"), T0 + 6);
    assert_eq!(texts(a.state()), ["gone", "keep"]);
    assert!(a.state().clip(&gone).unwrap().trashed_at.is_none());
}

#[test]
fn copying_a_trashed_clip_again_takes_it_out_of_the_trash() {
    let names = names();
    let mut a = device(1);
    let op = a.copy(&names, text("x"), T0);
    let id = a.state().newest().unwrap().id;
    a.delete(id, T0 + 1);
    assert!(a.state().newest().is_none());
    a.copy(&names, text("x"), T0 + 2);
    assert_eq!(a.state().newest().unwrap().id, id);
    // Replaying the first copy changes nothing.
    assert_eq!(a.apply(op).unwrap(), Applied::Duplicate);
}

#[test]
fn a_late_purge_does_not_hide_a_newer_copy() {
    let names = names();
    let mut a = device(1);
    let mut b = device(2);
    deliver(&mut b, &[a.copy(&names, text("x"), T0)]);
    let id = b.state().newest().unwrap().id;
    let purge = b.purge(id, T0 + 10);
    let recopy = a.copy(&names, text("x"), T0 + 20); // concurrent, later in time
    deliver(&mut a, &[purge]);
    deliver(&mut b, &[recopy]);
    assert_eq!(a.state().encode(), b.state().encode());
    assert_eq!(a.state().newest().unwrap().id, id);
}

#[test]
fn retention_purges_old_trash_and_caps_the_history() {
    let names = names();
    let mut a = device(1);
    let mut log = Vec::new();
    for i in 0..6 {
        log.push(a.copy(&names, text(&format!("c{i}")), T0 + i));
    }
    let c0 = ClipId::for_content(&names, &text("c0"));
    let c1 = ClipId::for_content(&names, &text("c1"));
    let c5 = ClipId::for_content(&names, &text("c5"));
    log.push(a.set_pinned(c0, true, T0 + 10));
    log.push(a.delete(c5, T0 + 11));

    let policy = Retention {
        trash_ms: Some(30 * DAY),
        max_history: Some(3),
    };
    // The trash is fresh; the history (c4 to c0, five clips) is two over the cap, and c0 is
    // pinned, so c1 and c2 go.
    let ops = a.retention(&policy, T0 + DAY);
    assert_eq!(ops.len(), 2);
    log.extend(ops);
    assert_eq!(texts(a.state()), ["c4", "c3", "c0"]);
    assert!(a.state().clip(&c1).is_none());
    assert_eq!(a.state().trash().len(), 1);

    // Thirty days later the trashed clip goes too.
    let ops = a.retention(&policy, T0 + 31 * DAY);
    assert_eq!(ops.len(), 1);
    log.extend(ops);
    assert!(a.state().trash().is_empty());
    assert!(a.state().clip(&c5).is_none());

    // The purges are operations like any other: another device that receives them agrees, and
    // running the policy there finds nothing more to do.
    let mut b = device(2);
    deliver(&mut b, &log);
    assert_eq!(b.state().encode(), a.state().encode());
    assert!(b.retention(&policy, T0 + 31 * DAY).is_empty());
}

#[test]
fn pinned_and_favourites() {
    let names = names();
    let mut a = device(1);
    a.copy(&names, text("p"), T0);
    a.copy(&names, text("f"), T0 + 1);
    let p = ClipId::for_content(&names, &text("p"));
    let f = ClipId::for_content(&names, &text("f"));
    a.set_pinned(p, true, T0 + 2);
    a.set_favourite(f, true, T0 + 3);
    assert_eq!(
        a.state().pinned().iter().map(|c| c.id).collect::<Vec<_>>(),
        [p]
    );
    assert_eq!(
        a.state()
            .favourites()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [f]
    );
    a.set_pinned(p, false, T0 + 4);
    assert!(a.state().pinned().is_empty());
    let stats = a.state().stats();
    assert_eq!((stats.pinned, stats.favourites, stats.bytes), (0, 1, 2));
}

#[test]
fn history_pages_continue_where_the_last_ended() {
    let names = names();
    let mut a = device(1);
    for i in 0..25 {
        a.copy(&names, text(&format!("c{i:02}")), T0 + i);
    }
    let first = a.state().history(None, 10);
    let second = a.state().history(Some(first.last().unwrap().cursor()), 10);
    let third = a.state().history(Some(second.last().unwrap().cursor()), 10);
    assert_eq!(first[0].content.text(), Some("c24"));
    assert_eq!(second[0].content.text(), Some("c14"));
    assert_eq!(third.len(), 5);
    assert_eq!(third[4].content.text(), Some("c00"));
}

#[test]
fn collections_keep_a_concurrent_add_over_a_remove() {
    let names = names();
    let mut a = device(1);
    let mut b = device(2);
    let mut ops = vec![a.copy(&names, text("x"), T0)];
    let x = a.state().newest().unwrap().id;
    let (work, create) = a.create_collection("work".into(), T0 + 1);
    ops.push(create);
    ops.push(a.add_to_collection(work, x, T0 + 2));
    deliver(&mut b, &ops);

    // a removes x while b, concurrently, adds it again: the add wins.
    let remove = a.remove_from_collection(work, x, T0 + 3);
    let add = b.add_to_collection(work, x, T0 + 3);
    deliver(&mut a, &[add]);
    deliver(&mut b, &[remove]);
    for r in [&a, &b] {
        let (view, clips) = r.state().collection(&work).unwrap();
        assert_eq!(view.name, "work");
        assert_eq!(clips.len(), 1);
    }

    // A remove that saw the add removes it.
    let remove = b.remove_from_collection(work, x, T0 + 4);
    deliver(&mut a, &[remove]);
    assert_eq!(a.state().collection(&work).unwrap().1.len(), 0);

    let rename = a.rename_collection(work, "job".into(), T0 + 5);
    deliver(&mut b, &[rename]);
    assert_eq!(b.state().collections()[0].name, "job");
    let delete = b.delete_collection(work, T0 + 6);
    deliver(&mut a, &[delete]);
    assert!(a.state().collections().is_empty());
    assert!(
        a.state().newest().is_some(),
        "deleting a collection keeps its clips"
    );
}

/// Two devices set the same alias concurrently: `a` to "from a" at T0+5, `b` to "from b" at T0+9.
fn conflicted() -> (Replica, Replica) {
    let mut a = device(1);
    let mut b = device(2);
    let op_a = a.set_alias("sig".into(), Some("from a".into()), T0 + 5);
    let op_b = b.set_alias("sig".into(), Some("from b".into()), T0 + 9);
    deliver(&mut a, &[op_b]);
    deliver(&mut b, &[op_a]);
    (a, b)
}

#[test]
fn keep_both_shows_every_concurrent_value_as_a_conflict() {
    let (a, b) = conflicted();
    for r in [&a, &b] {
        let resolved = r
            .state()
            .alias("sig", Strategy::KeepBoth, r.device())
            .unwrap();
        assert!(resolved.conflict);
        let values: Vec<_> = resolved
            .values
            .iter()
            .map(|v| v.value.clone().unwrap())
            .collect();
        assert_eq!(values, ["from b", "from a"]);
    }
}

#[test]
fn latest_local_wins_and_remote_wins() {
    let (a, b) = conflicted();
    let get = |r: &Replica, s| {
        r.state()
            .alias("sig", s, r.device())
            .unwrap()
            .value()
            .unwrap()
            .to_owned()
    };
    assert_eq!(get(&a, Strategy::Latest), "from b");
    assert_eq!(get(&b, Strategy::Latest), "from b");
    assert_eq!(get(&a, Strategy::LocalWins), "from a");
    assert_eq!(get(&b, Strategy::LocalWins), "from b");
    assert_eq!(get(&a, Strategy::RemoteWins), "from b");
    assert_eq!(get(&b, Strategy::RemoteWins), "from a");
}

#[test]
fn a_write_that_saw_the_conflict_resolves_it() {
    let (mut a, mut b) = conflicted();
    let fix = a.set_alias("sig".into(), Some("agreed".into()), T0 + 20);
    deliver(&mut b, &[fix]);
    let resolved = b
        .state()
        .alias("sig", Strategy::KeepBoth, b.device())
        .unwrap();
    assert!(!resolved.conflict);
    assert_eq!(resolved.value(), Some("agreed"));
}

#[test]
fn deleting_an_alias_and_settings() {
    let mut a = device(1);
    a.set_alias("x".into(), Some("1".into()), T0);
    a.set_alias("x".into(), None, T0 + 1);
    assert!(
        a.state()
            .alias("x", Strategy::KeepBoth, a.device())
            .is_none()
    );
    assert!(a.state().aliases(Strategy::Latest, a.device()).is_empty());
    a.set_setting("poll".into(), Some("60".into()), T0 + 2);
    let settings = a.state().settings(Strategy::Latest, a.device());
    assert_eq!(settings.len(), 1);
    assert_eq!(settings[0].1.value(), Some("60"));
    assert_eq!(a.state().stats().settings, 1);
}

#[test]
fn a_device_hours_behind_orders_its_copy_after_what_it_saw() {
    let names = names();
    let mut ahead = device(1);
    let mut behind = device(2);
    deliver(
        &mut behind,
        &[ahead.copy(&names, text("seen"), T0 + 5 * HOUR)],
    );
    let reply = behind.copy(&names, text("reply"), T0);
    deliver(&mut ahead, &[reply]);
    for r in [&ahead, &behind] {
        assert_eq!(texts(r.state()), ["reply", "seen"]);
    }
}

#[test]
fn a_device_hours_ahead_does_not_break_order_or_convergence() {
    let names = names();
    let mut fast = device(1);
    let mut slow = device(2);
    let future = fast.copy(&names, text("from the future"), T0 + 3 * HOUR);
    deliver(&mut slow, &[future]);
    let later = slow.copy(&names, text("later"), T0);
    assert!(later.hlc.wall_ms() >= T0 + 3 * HOUR);
    deliver(&mut fast, &[later]);
    assert_eq!(fast.state().encode(), slow.state().encode());
    assert_eq!(texts(fast.state()), ["later", "from the future"]);
}

#[test]
fn a_restarted_device_keeps_its_clock_and_counter() {
    let names = names();
    let mut a = device(1);
    let first = a.copy(&names, text("x"), T0 + HOUR);
    let mut resumed = Replica::with_state(a.device(), State::decode(&a.state().encode()).unwrap());
    let second = resumed.copy(&names, text("y"), T0); // wall clock went back
    assert_eq!(second.counter, first.counter + 1);
    assert!(second.hlc > first.hlc);
}

#[test]
fn gaps_are_refused_and_duplicates_ignored() {
    let names = names();
    let mut a = device(1);
    let ops = [
        a.copy(&names, text("1"), T0),
        a.copy(&names, text("2"), T0 + 1),
        a.copy(&names, text("3"), T0 + 2),
    ];
    let mut b = device(2);
    let err = b.apply(ops[2].clone()).unwrap_err();
    assert_eq!(
        err,
        CoreError::Gap {
            device: a.device(),
            expected: 1,
            got: 3
        }
    );
    assert!(err.is_transient());
    assert!(err.to_string().contains("arrived before operation 1"));
    assert_eq!(b.state().encode(), State::new().encode());
    deliver(&mut b, &ops[..2]);
    assert_eq!(b.apply(ops[0].clone()).unwrap(), Applied::Duplicate);
    assert_eq!(b.apply(ops[2].clone()).unwrap(), Applied::New);
    assert_eq!(b.state().seen(&a.device()), 3);
}

#[test]
fn scope_tells_which_operations_sync() {
    let names = names();
    let mut a = device(1);
    let copy = a.copy(&names, text("x"), T0);
    let alias = a.set_alias("n".into(), Some("v".into()), T0 + 1);
    let setting = a.set_setting("k".into(), Some("v".into()), T0 + 2);
    let (_, collection) = a.create_collection("c".into(), T0 + 3);
    assert_eq!(copy.data_kind(), Some(DataKind::Clips));
    assert_eq!(alias.data_kind(), Some(DataKind::Aliases));
    assert_eq!(setting.data_kind(), Some(DataKind::Settings));
    assert_eq!(collection.data_kind(), Some(DataKind::Collections));
    let clips_only = Scope {
        clips: true,
        collections: false,
        aliases: false,
        settings: false,
    };
    assert!(clips_only.includes(&copy));
    assert!(!clips_only.includes(&alias));
    assert!(!clips_only.includes(&setting));
    assert!(!clips_only.includes(&collection));
    assert!(Scope::default().includes(&setting));
    // The roster is no person's data to leave out: it always syncs.
    let identity = ferry_protocol::Identity::from_secret_bytes(&[5; 64]);
    let registration = a.register("laptop".into(), identity.public(), T0 + 4);
    assert_eq!(registration.data_kind(), None);
    assert!(clips_only.includes(&registration));
}

#[test]
fn content_kinds_and_sizes() {
    let image = ClipContent::image(
        "image/png",
        Body::Blob {
            id: ferry_protocol::BlobId([1; 32]),
            len: 5_000_000,
        },
    );
    assert_eq!(image.size(), 5_000_000);
    assert_eq!(image.text(), None);
    let rich = ClipContent::rich_text("<b>x</b>", "x");
    assert_eq!(rich.text(), Some("x"));
    assert_eq!(rich.size(), 9);
    let names = names();
    assert_ne!(
        ClipId::for_content(&names, &text("x")),
        ClipId::for_content(&names, &rich),
        "the same text as plain and rich text are different clips"
    );
}

#[test]
fn an_older_build_sees_the_newest_action_as_newer_not_broken() {
    let mut a = device(1);
    // RegisterDevice is the last kind of action: its index is the highest this build knows.
    let identity = ferry_protocol::Identity::from_secret_bytes(&[5; 64]);
    let newest = a.register("laptop".into(), identity.public(), T0).encode();
    let last = Action::KINDS - 1;
    assert_eq!(
        Op::decode_known(&newest, last),
        Err(CoreError::NewerAction { action: last })
    );
    assert!(Op::decode_known(&newest, Action::KINDS).is_ok());
    let copy = a.copy(&names(), text("x"), T0 + 1).encode();
    assert!(Op::decode_known(&copy, 1).is_ok(), "Copy is the first kind");
    assert!(Op::decode_known(&copy, 0).is_err());
}

#[test]
fn broken_bytes_do_not_decode() {
    let names = names();
    let mut a = device(1);
    let op = a.copy(&names, text("x"), T0);
    let bytes = op.encode();
    assert_eq!(Op::decode(&bytes).unwrap(), op);
    for cut in 0..bytes.len() {
        assert!(matches!(
            Op::decode(&bytes[..cut]),
            Err(CoreError::Malformed(_))
        ));
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(Op::decode(&long), Err(CoreError::Malformed(_))));
    let mut unknown_action = bytes.clone();
    // The action's variant index comes before the clip id (16 bytes) and the content (variant,
    // length and the one byte of "x").
    let at = bytes.len() - (16 + 3) - 1;
    assert_eq!(bytes[at], 0, "Copy is action 0");
    unknown_action[at] = 99;
    let err = Op::decode(&unknown_action).unwrap_err();
    assert_eq!(err, CoreError::NewerAction { action: 99 });
    assert!(err.to_string().contains("upgrade"), "{err}");

    let state = a.state().encode();
    assert_eq!(State::decode(&state).unwrap().encode(), state);
    assert!(State::decode(&state[..state.len() - 1]).is_err());
    assert!(State::decode(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff").is_err());
}

#[test]
fn the_roster_keeps_one_entry_per_device_whatever_the_order() {
    let keys = |seed: u8| ferry_protocol::Identity::from_secret_bytes(&[seed; 64]).public();
    let mut real = device(1);
    let first = real.register("laptop".into(), keys(5), T0);
    // A replica of the same device id that registers again, later, with other keys.
    let mut again = Replica::new(real.device());
    again.apply(first.clone()).unwrap();
    let later = again.register("thief".into(), keys(6), T0 + 10);
    let mut state = State::new();
    state.apply(first.clone()).unwrap();
    state.apply(later).unwrap();
    let entry = state.device(&real.device()).unwrap();
    assert_eq!((entry.name.as_str(), entry.keys), ("laptop", keys(5)));
    assert_eq!(entry.added_by(), real.device());

    // Another device's claim to the same id: both orders keep the same entry.
    let mut other = device(2);
    let mut claim = other.register("other".into(), keys(7), T0 + 5);
    claim.action = Action::RegisterDevice {
        device: real.device(),
        name: "claim".into(),
        keys: keys(7),
    };
    let mut one = State::new();
    one.apply(first.clone()).unwrap();
    one.apply(claim.clone()).unwrap();
    let mut two = State::new();
    two.apply(claim).unwrap();
    two.apply(first).unwrap();
    assert_eq!(one, two);
    assert_eq!(one.encode(), two.encode());
    let mut merged = State::new();
    merged.merge(two);
    merged.merge(real.state().clone());
    assert_eq!(merged, one);
}

fn identity_keys(seed: u8) -> ferry_protocol::DeviceKeys {
    ferry_protocol::Identity::from_secret_bytes(&[seed; 64]).public()
}

/// Replicas that registered, each with keys of its own, and have each other's registrations.
fn roster(n: u8) -> Vec<Replica> {
    let mut replicas: Vec<Replica> = (1..=n).map(device).collect();
    let mut ops = Vec::new();
    for (i, replica) in replicas.iter_mut().enumerate() {
        let name = format!("device {}", i + 1);
        ops.push(replica.register(name, identity_keys(i as u8 + 1), T0 + i as u64));
    }
    for replica in &mut replicas {
        for op in &ops {
            replica.apply(op.clone()).unwrap();
        }
    }
    replicas
}

#[test]
fn only_a_device_names_itself_and_a_write_claiming_another_writer_is_its_writers() {
    let mut r = roster(3);
    let (laptop, phone) = (r[0].device(), r[1].device());
    let named = r[0].set_setting(format!("device/{laptop}"), Some("laptop".into()), T0 + 10);
    deliver(&mut r[2], std::slice::from_ref(&named));
    // The lost phone, which has read the laptop's name, takes it and gives the laptop another
    // (a write that would replace the laptop's own).
    deliver(&mut r[1], &[named]);
    let ops = [
        r[1].set_setting(
            format!("device/{laptop}"),
            Some("old tablet".into()),
            T0 + 20,
        ),
        r[1].set_setting(format!("device/{phone}"), Some("laptop".into()), T0 + 21),
    ];
    deliver(&mut r[2], &ops);
    let state = r[2].state();
    assert_eq!(state.own_name(&laptop).as_deref(), Some("laptop"));
    assert_eq!(state.own_name(&phone).as_deref(), Some("laptop"));
    assert_eq!(
        state.own_name(&r[2].device()).as_deref(),
        Some("device 3"),
        "its registration"
    );

    // A write whose value claims the laptop wrote it is the phone's, and so counts for
    // nothing under a key only the laptop may write.
    let reader = r[2].device();
    let mut forged = r[1].set_setting(format!("paired/{reader}"), Some("x".into()), T0 + 30);
    if let Action::Setting {
        op: crdts::mvreg::Op::Put { val, .. },
        ..
    } = &mut forged.action
    {
        val.hlc.device = laptop;
    }
    deliver(&mut r[2], &[forged]);
    let register = r[2]
        .state()
        .setting(&format!("paired/{reader}"), Strategy::Latest, laptop)
        .unwrap();
    assert_eq!(register.values[0].hlc.device, phone);
}

#[test]
fn an_attestation_counts_only_along_a_chain_from_the_first_device() {
    use ferry_core::Membership;
    let mut r = roster(6);
    let ids: Vec<DeviceId> = r.iter().map(Replica::device).collect();
    let keys = |i: usize| identity_keys(i as u8 + 1);
    let mut ops = vec![
        // 1 (first) vouches for 2, and 2 for 3.
        r[0].vouch(ids[1], &keys(1), T0 + 10),
        r[1].vouch(ids[2], &keys(2), T0 + 11),
        // 4 and 5 joined with the key alone and vouch for each other; 6 for itself.
        r[3].vouch(ids[4], &keys(4), T0 + 12),
        r[4].vouch(ids[3], &keys(3), T0 + 13),
        r[5].vouch(ids[5], &keys(5), T0 + 14),
    ];
    // 2 also vouches for keys 6 never registered.
    ops.push(r[1].vouch(ids[5], &keys(0), T0 + 15));
    let mut state = r[0].state().clone();
    for op in &ops {
        state.apply(op.clone()).unwrap();
    }
    let held = state.memberships(Some(ids[0]));
    assert_eq!(held[&ids[0]], Membership::First);
    assert!(matches!(&held[&ids[1]], Membership::Attested(p) if p.by == ids[0]));
    assert!(matches!(&held[&ids[2]], Membership::Attested(p) if p.by == ids[1]));
    assert!(matches!(&held[&ids[3]], Membership::Unchained(p) if p.by == ids[4]));
    assert!(matches!(&held[&ids[4]], Membership::Unchained(p) if p.by == ids[3]));
    assert_eq!(held[&ids[5]], Membership::Unattested);
    assert!(!held[&ids[3]].holds() && held[&ids[2]].holds());

    // Once a device of the chain vouches for 4, 4's word counts too, and so 5 holds.
    state.apply(r[2].vouch(ids[3], &keys(3), T0 + 20)).unwrap();
    let held = state.memberships(Some(ids[0]));
    assert!(matches!(&held[&ids[3]], Membership::Attested(p) if p.by == ids[2]));
    assert!(matches!(&held[&ids[4]], Membership::Attested(p) if p.by == ids[3]));
    // Without a first device nothing holds.
    assert!(state.memberships(None).values().all(|m| !m.holds()));

    // Once 2 is removed, neither it nor what holds only through it (3, and 4 and 5 through
    // 3) holds.
    let without = |removed: &[usize]| {
        let removed = removed.iter().map(|&i| ids[i]).collect();
        state.memberships_without(Some(ids[0]), &removed)
    };
    let held = without(&[1]);
    assert!(held[&ids[0]].holds());
    for i in 1..5 {
        assert!(!held[&ids[i]].holds(), "device {}", i + 1);
    }
    // The first device removed: it is no member, but the chains it roots stand.
    let held = without(&[0]);
    assert!(!held[&ids[0]].holds());
    assert!(held[&ids[1]].holds() && held[&ids[2]].holds());
}

#[test]
fn removal_marks_say_who_wrote_them_and_for_which_generation() {
    use ferry_core::Removal;
    let mut r = roster(3);
    let (laptop, phone) = (r[0].device(), r[1].device());
    let mut stranger = Replica::new(DeviceId([0xEE; 16]));
    let mut state = r[2].state().clone();
    state
        .apply(stranger.mark_removed(laptop, 2, T0 + 5))
        .unwrap();
    assert!(state.removals().is_empty(), "an unregistered writer's word");
    state.apply(r[0].mark_removed(phone, 2, T0 + 10)).unwrap();
    // The phone, still registered, marks the laptop: the mark is there, with its writer.
    state.apply(r[1].mark_removed(laptop, 2, T0 + 11)).unwrap();
    let mut found = state.removals();
    found.sort_by_key(|r| r.by);
    let mut expected = vec![
        Removal {
            device: phone,
            generation: 2,
            by: laptop,
        },
        Removal {
            device: laptop,
            generation: 2,
            by: phone,
        },
    ];
    expected.sort_by_key(|r| r.by);
    assert_eq!(found, expected);
    // Marks survive a snapshot's merge, whoever wrote the snapshot.
    let mut snapshot = state.clone();
    snapshot.keep_writers_word(r[2].device());
    let mut reader = State::new();
    reader.merge(snapshot);
    assert_eq!(reader.removals().len(), 2);
}

#[test]
fn a_snapshot_carries_only_its_writers_own_names_and_attestations() {
    let mut r = roster(3);
    let (laptop, phone, desk) = (r[0].device(), r[1].device(), r[2].device());
    let ops = [
        r[0].set_setting(format!("device/{laptop}"), Some("laptop".into()), T0 + 10),
        r[0].vouch(desk, &identity_keys(3), T0 + 11),
        r[0].set_setting(
            format!("paired/{phone}"),
            Some(identity_keys(2).to_hex()),
            T0 + 12,
        ),
        r[0].set_setting("theme".into(), Some("dark".into()), T0 + 13),
    ];
    deliver(&mut r[1], &ops);
    r[1].set_setting(format!("device/{phone}"), Some("phone".into()), T0 + 14);
    // What the phone's snapshot holds, as another device merges it.
    let mut snapshot = r[1].state().clone();
    snapshot.keep_writers_word(phone);
    let mut reader = State::new();
    reader.merge(snapshot);
    assert_eq!(reader.own_name(&phone).as_deref(), Some("phone"));
    assert_eq!(
        reader.own_name(&laptop).as_deref(),
        Some("device 1"),
        "its registration"
    );
    let held = reader.memberships(Some(laptop));
    assert_eq!(held[&desk], ferry_core::Membership::Unattested);
    assert_eq!(held[&phone], ferry_core::Membership::Unattested);
    let theme = reader.setting("theme", Strategy::Latest, laptop).unwrap();
    assert_eq!(theme.value(), Some("dark"), "other settings are everyone's");
    // The laptop's own snapshot brings its word.
    let mut own = r[0].state().clone();
    own.keep_writers_word(laptop);
    reader.merge(own);
    assert_eq!(reader.own_name(&laptop).as_deref(), Some("laptop"));
    let held = reader.memberships(Some(laptop));
    assert!(matches!(&held[&desk], ferry_core::Membership::Attested(p) if p.by == laptop));
    assert!(matches!(&held[&phone], ferry_core::Membership::Attested(p) if p.by == laptop));
}

#[test]
fn the_keys_known_are_the_registered_ones_and_those_a_registered_device_attested() {
    let mut r = roster(2);
    let (laptop, phone) = (r[0].device(), r[1].device());
    let joining = DeviceId([0x71; 16]);
    let unvouched = DeviceId([0x72; 16]);
    let outsider = device(9);
    let ops = [
        // The laptop adds a device that has not registered yet.
        r[0].vouch(joining, &identity_keys(7), T0 + 10),
        // An attestation of the phone's id with other keys changes nothing: it registered.
        r[0].vouch(phone, &identity_keys(8), T0 + 11),
    ];
    let mut state = r[1].state().clone();
    for op in ops {
        state.apply(op).unwrap();
    }
    // A device not in the roster vouches: that counts for nothing.
    let mut outsider = outsider;
    state
        .apply(outsider.vouch(unvouched, &identity_keys(9), T0 + 12))
        .unwrap();
    // Two members attest one joining id with different keys: neither is let in.
    let contested = DeviceId([0x73; 16]);
    state
        .apply(r[0].vouch(contested, &identity_keys(5), T0 + 13))
        .unwrap();
    state
        .apply(r[1].vouch(contested, &identity_keys(6), T0 + 14))
        .unwrap();
    let known = state.known_keys();
    assert!(!known.contains_key(&contested));
    assert_eq!(known.len(), 3, "{known:?}");
    assert_eq!(known[&laptop], identity_keys(1));
    assert_eq!(known[&phone], identity_keys(2));
    assert_eq!(known[&joining], identity_keys(7));
    assert!(!known.contains_key(&unvouched));
}
