//! An interval tree over key ranges: which ranges contain a key.
//!
//! Owns a balanced (AVL) binary search tree of distinct half-open key ranges
//! `[start, end)`, ordered by `(start, end)`, each node carrying a value (the set of
//! watchers on that exact range) and the largest `end` in its subtree. A stabbing query
//! ("every range containing key k") skips every subtree whose largest end is `<= k` and
//! every right subtree whose start is `> k`, so it costs `O(log n)` plus the ranges it
//! reports; inserting or removing a range costs `O(log n)`.
//! Invariants kept: AVL balance (subtree heights differ by at most one), `max_end` is the
//! maximum `end` of the subtree, and each `(start, end)` appears at most once.

use std::cmp::Ordering;

/// The end of a key range: a key (exclusive) or no end at all. `Key(_) < Unbounded`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RangeEnd {
    /// Up to this key, excluded.
    Key(Vec<u8>),
    /// Every key from the start on.
    Unbounded,
}

impl RangeEnd {
    /// Whether `key` lies before this end.
    pub fn is_after(&self, key: &[u8]) -> bool {
        match self {
            RangeEnd::Key(e) => e.as_slice() > key,
            RangeEnd::Unbounded => true,
        }
    }
}

struct Node<V> {
    start: Vec<u8>,
    end: RangeEnd,
    max_end: RangeEnd,
    value: V,
    height: u8,
    left: Option<Box<Node<V>>>,
    right: Option<Box<Node<V>>>,
}

/// A map from distinct key ranges to values, answering stabbing queries.
pub struct IntervalTree<V> {
    root: Option<Box<Node<V>>>,
    len: usize,
}

impl<V> Default for IntervalTree<V> {
    fn default() -> Self {
        IntervalTree { root: None, len: 0 }
    }
}

impl<V> std::fmt::Debug for IntervalTree<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntervalTree")
            .field("len", &self.len)
            .finish()
    }
}

fn height<V>(n: &Option<Box<Node<V>>>) -> u8 {
    n.as_ref().map_or(0, |n| n.height)
}

fn cmp_range(s1: &[u8], e1: &RangeEnd, s2: &[u8], e2: &RangeEnd) -> Ordering {
    s1.cmp(s2).then_with(|| e1.cmp(e2))
}

impl<V> Node<V> {
    fn leaf(start: Vec<u8>, end: RangeEnd, value: V) -> Box<Self> {
        Box::new(Node {
            max_end: end.clone(),
            start,
            end,
            value,
            height: 1,
            left: None,
            right: None,
        })
    }

    /// Recomputes height and max_end from the children.
    fn update(&mut self) {
        self.height = 1 + height(&self.left).max(height(&self.right));
        let mut max = &self.end;
        for child in [&self.left, &self.right].into_iter().flatten() {
            if child.max_end > *max {
                max = &child.max_end;
            }
        }
        self.max_end = max.clone();
    }

    fn balance_factor(&self) -> i16 {
        i16::from(height(&self.left)) - i16::from(height(&self.right))
    }
}

fn rotate_right<V>(mut n: Box<Node<V>>) -> Box<Node<V>> {
    let Some(mut l) = n.left.take() else {
        return n;
    };
    n.left = l.right.take();
    n.update();
    l.right = Some(n);
    l.update();
    l
}

fn rotate_left<V>(mut n: Box<Node<V>>) -> Box<Node<V>> {
    let Some(mut r) = n.right.take() else {
        return n;
    };
    n.right = r.left.take();
    n.update();
    r.left = Some(n);
    r.update();
    r
}

/// Restores the AVL balance of `n` (whose children are balanced) and updates it.
fn rebalance<V>(mut n: Box<Node<V>>) -> Box<Node<V>> {
    n.update();
    let bf = n.balance_factor();
    if bf > 1 {
        if n.left.as_ref().is_some_and(|l| l.balance_factor() < 0) {
            n.left = n.left.take().map(rotate_left);
        }
        return rotate_right(n);
    }
    if bf < -1 {
        if n.right.as_ref().is_some_and(|r| r.balance_factor() > 0) {
            n.right = n.right.take().map(rotate_right);
        }
        return rotate_left(n);
    }
    n
}

fn insert<V>(node: Option<Box<Node<V>>>, start: Vec<u8>, end: RangeEnd, value: V) -> Box<Node<V>> {
    let Some(mut n) = node else {
        return Node::leaf(start, end, value);
    };
    match cmp_range(&start, &end, &n.start, &n.end) {
        Ordering::Less => n.left = Some(insert(n.left.take(), start, end, value)),
        Ordering::Greater => n.right = Some(insert(n.right.take(), start, end, value)),
        Ordering::Equal => {
            n.value = value;
            return n;
        }
    }
    rebalance(n)
}

/// Removes the smallest node of the subtree; returns the rest and that node.
fn remove_min<V>(mut n: Box<Node<V>>) -> (Option<Box<Node<V>>>, Box<Node<V>>) {
    match n.left.take() {
        None => {
            let rest = n.right.take();
            (rest, n)
        }
        Some(l) => {
            let (rest, min) = remove_min(l);
            n.left = rest;
            (Some(rebalance(n)), min)
        }
    }
}

fn remove<V>(
    node: Option<Box<Node<V>>>,
    start: &[u8],
    end: &RangeEnd,
) -> (Option<Box<Node<V>>>, Option<V>) {
    let Some(mut n) = node else {
        return (None, None);
    };
    let removed;
    match cmp_range(start, end, &n.start, &n.end) {
        Ordering::Less => {
            let (l, r) = remove(n.left.take(), start, end);
            n.left = l;
            removed = r;
        }
        Ordering::Greater => {
            let (rt, r) = remove(n.right.take(), start, end);
            n.right = rt;
            removed = r;
        }
        Ordering::Equal => {
            let (left, right) = (n.left.take(), n.right.take());
            let value = n.value;
            let rest = match (left, right) {
                (None, r) => r,
                (l, None) => l,
                (Some(l), Some(r)) => {
                    let (rest, mut min) = remove_min(r);
                    min.left = Some(l);
                    min.right = rest;
                    Some(rebalance(min))
                }
            };
            return (rest, Some(value));
        }
    }
    (Some(rebalance(n)), removed)
}

fn get_mut<'a, V>(
    mut node: &'a mut Option<Box<Node<V>>>,
    start: &[u8],
    end: &RangeEnd,
) -> Option<&'a mut V> {
    while let Some(n) = node {
        match cmp_range(start, end, &n.start, &n.end) {
            Ordering::Less => node = &mut n.left,
            Ordering::Greater => node = &mut n.right,
            Ordering::Equal => return Some(&mut n.value),
        }
    }
    None
}

fn stab<'a, V>(node: &'a Option<Box<Node<V>>>, key: &[u8], f: &mut impl FnMut(&'a V)) {
    let Some(n) = node else { return };
    if !n.max_end.is_after(key) {
        return; // every range here ends at or before key
    }
    stab(&n.left, key, f);
    if n.start.as_slice() <= key {
        if n.end.is_after(key) {
            f(&n.value);
        }
        stab(&n.right, key, f);
    }
}

impl<V> IntervalTree<V> {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct ranges.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of range `[start, end)`, if present.
    pub fn get_mut(&mut self, start: &[u8], end: &RangeEnd) -> Option<&mut V> {
        get_mut(&mut self.root, start, end)
    }

    /// Applies `f` to the value of range `[start, end)`, inserting a default value first
    /// if the range is absent.
    pub fn upsert(&mut self, start: &[u8], end: &RangeEnd, f: impl FnOnce(&mut V))
    where
        V: Default,
    {
        if let Some(v) = get_mut(&mut self.root, start, end) {
            f(v);
            return;
        }
        let mut v = V::default();
        f(&mut v);
        self.root = Some(insert(self.root.take(), start.to_vec(), end.clone(), v));
        self.len += 1;
    }

    /// Removes range `[start, end)`; returns its value.
    pub fn remove(&mut self, start: &[u8], end: &RangeEnd) -> Option<V> {
        let (root, removed) = remove(self.root.take(), start, end);
        self.root = root;
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` with the value of every range that contains `key`.
    pub fn stab<'a>(&'a self, key: &[u8], mut f: impl FnMut(&'a V)) {
        stab(&self.root, key, &mut f);
    }

    /// Height of the tree (0 when empty).
    pub fn height(&self) -> u8 {
        height(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_invariants<V>(n: &Option<Box<Node<V>>>) -> (u8, Option<RangeEnd>) {
        let Some(n) = n else { return (0, None) };
        let (hl, ml) = check_invariants(&n.left);
        let (hr, mr) = check_invariants(&n.right);
        assert!((i16::from(hl) - i16::from(hr)).abs() <= 1, "unbalanced");
        assert_eq!(n.height, 1 + hl.max(hr));
        let max = [Some(n.end.clone()), ml, mr].into_iter().flatten().max();
        assert_eq!(Some(n.max_end.clone()), max);
        if let Some(l) = &n.left {
            assert_eq!(
                cmp_range(&l.start, &l.end, &n.start, &n.end),
                Ordering::Less
            );
        }
        if let Some(r) = &n.right {
            assert_eq!(
                cmp_range(&r.start, &r.end, &n.start, &n.end),
                Ordering::Greater
            );
        }
        (n.height, Some(n.max_end.clone()))
    }

    fn range() -> impl Strategy<Value = (Vec<u8>, RangeEnd)> {
        (0u8..20, prop::option::of(1u8..8)).prop_map(|(s, len)| {
            let end = match len {
                Some(l) => RangeEnd::Key(vec![s.saturating_add(l)]),
                None => RangeEnd::Unbounded,
            };
            (vec![s], end)
        })
    }

    proptest! {
        #[test]
        fn stabbing_matches_a_scan_and_the_tree_stays_balanced(
            ops in prop::collection::vec((any::<bool>(), range()), 1..200),
            probes in prop::collection::vec(0u8..30, 1..20),
        ) {
            let mut tree = IntervalTree::new();
            let mut naive: Vec<(Vec<u8>, RangeEnd, u32)> = Vec::new();
            for (i, (add, (s, e))) in ops.into_iter().enumerate() {
                if add {
                    tree.upsert(&s, &e, |v| *v = i as u32);
                    naive.retain(|(ns, ne, _)| !(ns == &s && ne == &e));
                    naive.push((s, e, i as u32));
                } else {
                    let got = tree.remove(&s, &e);
                    let pos = naive.iter().position(|(ns, ne, _)| ns == &s && ne == &e);
                    prop_assert_eq!(got, pos.map(|p| naive.remove(p).2));
                }
                check_invariants(&tree.root);
                prop_assert_eq!(tree.len(), naive.len());
            }
            for k in probes {
                let key = [k];
                let mut got = Vec::new();
                tree.stab(&key, |v| got.push(*v));
                got.sort_unstable();
                let mut want: Vec<u32> = naive
                    .iter()
                    .filter(|(s, e, _)| s.as_slice() <= &key[..] && e.is_after(&key))
                    .map(|(_, _, v)| *v)
                    .collect();
                want.sort_unstable();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn a_sequential_load_stays_logarithmic() {
        let mut tree = IntervalTree::new();
        for i in 0u32..10_000 {
            let s = i.to_be_bytes().to_vec();
            let e = RangeEnd::Key((i + 1).to_be_bytes().to_vec());
            tree.upsert(&s, &e, |v| *v = i);
        }
        assert!(tree.height() <= 20, "height {}", tree.height());
        let mut hits = Vec::new();
        tree.stab(&500u32.to_be_bytes(), |v| hits.push(*v));
        assert_eq!(hits, vec![500]);
        for i in 0u32..10_000 {
            let s = i.to_be_bytes().to_vec();
            let e = RangeEnd::Key((i + 1).to_be_bytes().to_vec());
            assert_eq!(tree.remove(&s, &e), Some(i));
        }
        assert!(tree.is_empty());
        assert_eq!(tree.height(), 0);
    }
}
