//! Bounded enumeration of the elementary cycles of a directed graph.
//!
//! Each cycle is reported once, starting at its smallest node: strongly connected components
//! (petgraph's Tarjan) limit the search, and from each start node the search only visits
//! larger nodes of the same component. The number of cycles of a dense graph explodes, so the
//! enumeration stops after a number of cycles, a cycle length and a number of search steps,
//! and says whether it stopped early.

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// Limits of one enumeration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Stop after this many cycles.
    pub max_cycles: usize,
    /// Ignore cycles longer than this.
    pub max_len: usize,
    /// Stop after this many search steps.
    pub max_steps: usize,
}

/// Elementary cycles as node sequences (`[a, b]` is `a → b → a`); `true` if the bounds cut
/// the enumeration short.
pub(crate) fn elementary_cycles<N, E>(
    graph: &DiGraph<N, E>,
    bounds: Bounds,
) -> (Vec<Vec<NodeIndex>>, bool) {
    let mut component = vec![usize::MAX; graph.node_count()];
    let mut sccs = tarjan_scc(graph);
    for (i, scc) in sccs.iter_mut().enumerate() {
        scc.sort();
        for node in scc.iter() {
            component[node.index()] = i;
        }
    }
    let mut out = Vec::new();
    let mut steps = 0usize;
    let mut cut = false;
    let mut on_path = vec![false; graph.node_count()];
    // Visit components and start nodes in node order, so that the output is deterministic.
    sccs.sort();
    for scc in sccs.iter().filter(|scc| scc.len() > 1) {
        for &start in scc {
            let mut path = vec![start];
            on_path[start.index()] = true;
            // Each frame: the neighbours of the node at that depth still to try.
            let mut stack: Vec<Vec<NodeIndex>> = vec![successors(graph, start, &component)];
            while let Some(frame) = stack.last_mut() {
                steps += 1;
                if steps > bounds.max_steps || out.len() >= bounds.max_cycles {
                    cut = true;
                    break;
                }
                let Some(next) = frame.pop() else {
                    stack.pop();
                    if let Some(node) = path.pop() {
                        on_path[node.index()] = false;
                    }
                    continue;
                };
                if next == start {
                    out.push(path.clone());
                } else if next > start && !on_path[next.index()] && path.len() < bounds.max_len {
                    path.push(next);
                    on_path[next.index()] = true;
                    stack.push(successors(graph, next, &component));
                } else if next > start && !on_path[next.index()] {
                    cut = true;
                }
            }
            for node in path.drain(..) {
                on_path[node.index()] = false;
            }
            if cut && (steps > bounds.max_steps || out.len() >= bounds.max_cycles) {
                return (out, true);
            }
        }
    }
    (out, cut)
}

/// The successors of `node` in its own component, distinct, in descending order (they are
/// popped, so visited ascending).
fn successors<N, E>(graph: &DiGraph<N, E>, node: NodeIndex, component: &[usize]) -> Vec<NodeIndex> {
    let mut next: Vec<NodeIndex> =
        graph.neighbors(node).filter(|n| component[n.index()] == component[node.index()]).collect();
    next.sort_unstable_by(|a, b| b.cmp(a));
    next.dedup();
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDE: Bounds = Bounds { max_cycles: 100, max_len: 10, max_steps: 10_000 };

    fn graph(n: usize, edges: &[(usize, usize)]) -> DiGraph<(), ()> {
        let mut g = DiGraph::new();
        let nodes: Vec<_> = (0..n).map(|_| g.add_node(())).collect();
        for &(a, b) in edges {
            g.add_edge(nodes[a], nodes[b], ());
        }
        g
    }

    fn as_usize(cycles: Vec<Vec<NodeIndex>>) -> Vec<Vec<usize>> {
        cycles.into_iter().map(|c| c.into_iter().map(|n| n.index()).collect()).collect()
    }

    #[test]
    fn each_elementary_cycle_is_found_once() {
        // 0 ⇄ 1, 1 ⇄ 2, 0 → 2 → ... : cycles [0,1], [1,2], [0,2,1]
        let g = graph(3, &[(0, 1), (1, 0), (1, 2), (2, 1), (0, 2)]);
        let (cycles, cut) = elementary_cycles(&g, WIDE);
        assert!(!cut);
        let mut cycles = as_usize(cycles);
        cycles.sort();
        assert_eq!(cycles, vec![vec![0, 1], vec![0, 2, 1], vec![1, 2]]);
    }

    #[test]
    fn acyclic_graphs_and_self_loops_have_no_cycles() {
        let g = graph(4, &[(0, 1), (1, 2), (0, 2), (2, 3), (3, 3)]);
        assert_eq!(elementary_cycles(&g, WIDE), (vec![], false));
    }

    #[test]
    fn enumeration_stops_at_its_bounds() {
        // A complete graph on 6 nodes has hundreds of elementary cycles.
        let mut edges = Vec::new();
        for a in 0..6 {
            for b in 0..6 {
                if a != b {
                    edges.push((a, b));
                }
            }
        }
        let g = graph(6, &edges);
        let bounds = Bounds { max_cycles: 10, max_len: 10, max_steps: 100_000 };
        let (cycles, cut) = elementary_cycles(&g, bounds);
        assert_eq!(cycles.len(), 10);
        assert!(cut);
    }
}
