//! Deterministic sample states of every type, built by real operations, shared by the golden
//! vectors and the decoding fuzz tests.

#![allow(dead_code)]

use crdt::{
    CausalContext, Dot, GCounter, LwwRegister, Merge, NodeId, OrSet, PnCounter, Rga, Timestamp,
    Value,
};

pub fn ts(ms: u64, node: u64) -> Timestamp {
    Timestamp {
        physical_ms: ms,
        logical: 3,
        node: NodeId(node),
    }
}

pub fn causal_context() -> CausalContext {
    [
        Dot::new(NodeId(1), 1),
        Dot::new(NodeId(1), 2),
        Dot::new(NodeId(1), 5),
        Dot::new(NodeId(9), 3),
    ]
    .into_iter()
    .collect()
}

pub fn g_counter() -> GCounter {
    let mut c = GCounter::new();
    c.increment(NodeId(1), 5).unwrap();
    c.increment(NodeId(300), 70_000).unwrap();
    c
}

pub fn pn_counter() -> PnCounter {
    let mut c = PnCounter::new();
    c.increment(NodeId(1), 5).unwrap();
    c.increment(NodeId(2), -9).unwrap();
    c
}

pub fn or_set() -> OrSet {
    let mut a = OrSet::new();
    let mut b = OrSet::new();
    let (d, _) = a.add(NodeId(1), [&b"apple"[..], b"pear", b"\x00\xff"]);
    b.merge(d);
    b.remove([&b"pear"[..]]);
    let (d2, _) = b.add(NodeId(2), [&b"fig"[..]]);
    a.merge(d2);
    a.add(NodeId(1), [&b"apple"[..]]);
    a.merge(b);
    a
}

pub fn lww_register() -> LwwRegister {
    let mut a = LwwRegister::new();
    let mut b = LwwRegister::new();
    let d = a.set(ts(10, 1), b"hello");
    b.merge(d);
    let da = a.set(ts(20, 1), b"from a");
    b.set(ts(19, 2), b"from b");
    b.merge(da);
    b
}

/// A text edited concurrently on two nodes, with a delete and an insert inside a deleted range.
pub fn rga() -> Rga {
    let mut a = Rga::new();
    let mut b = Rga::new();
    let d = a.insert(NodeId(1), 0, "abc déf").unwrap();
    b.merge(d);
    b.insert(NodeId(2), 3, "XY").unwrap();
    a.delete(NodeId(1), 1, 2).unwrap();
    a.insert(NodeId(1), 2, "z").unwrap();
    a.merge(b);
    a
}

/// One `Value` per kind and the interesting compound states, by name.
pub fn values() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut reg = Value::new();
    reg.set_register(ts(1, 1), b"bar");
    out.push(("value_register".to_string(), reg.clone()));

    let mut counter = Value::new();
    counter.incr_by(ts(2, 1), 40).unwrap();
    let mut other = Value::new();
    other.merge(counter.clone());
    other.incr_by(ts(3, 2), -2).unwrap();
    counter.merge(other);
    out.push(("value_pn_counter".to_string(), counter.clone()));

    let mut g = Value::new();
    g.gcounter_incr_by(ts(4, 1), 7).unwrap();
    out.push(("value_g_counter".to_string(), g));

    let mut set = Value::new();
    set.sadd(ts(5, 1), &[b"a", b"b", b"c"]).unwrap();
    set.srem(&[b"b"]).unwrap();
    out.push(("value_set".to_string(), set.clone()));

    let mut tomb = counter.clone();
    tomb.delete().unwrap();
    out.push(("value_tombstone".to_string(), tomb));

    let mut conflict = reg;
    conflict.merge(set);
    out.push(("value_type_conflict".to_string(), conflict));

    let mut text = Value::new();
    text.text_insert(ts(8, 1), 0, "héllo wörld").unwrap();
    text.text_delete(ts(9, 1), 5, 1).unwrap();
    let mut other = Value::new();
    other.merge(text.clone());
    other.text_insert(ts(10, 2), 5, "_").unwrap();
    text.text_insert(ts(10, 1), 0, ">").unwrap();
    text.merge(other);
    out.push(("value_text".to_string(), text));

    let mut converted = Value::new();
    converted.set_register(ts(6, 3), b"41");
    converted.incr_by(ts(7, 3), 1).unwrap();
    out.push(("value_converted".to_string(), converted));
    out
}
