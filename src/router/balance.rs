//! Smooth weighted round robin (nginx's): over any run of picks, each candidate is chosen in
//! proportion to its weight, and picks of one candidate are spread out rather than bunched.

use std::sync::Mutex;

pub struct SmoothWeighted {
    current: Mutex<Vec<i64>>,
}

impl SmoothWeighted {
    pub fn new(candidates: usize) -> SmoothWeighted {
        SmoothWeighted {
            current: Mutex::new(vec![0; candidates]),
        }
    }

    /// Picks among `candidates` (index, weight); returns the chosen index. Candidates not
    /// offered this time keep their state.
    pub fn pick(&self, candidates: &[(usize, u32)]) -> Option<usize> {
        let mut current = self.current.lock().ok()?;
        let total: i64 = candidates.iter().map(|(_, w)| i64::from(*w)).sum();
        let mut best: Option<usize> = None;
        for &(index, weight) in candidates {
            *current.get_mut(index)? += i64::from(weight);
            if best.is_none_or(|b| current[index] > current[b]) {
                best = Some(index);
            }
        }
        let chosen = best?;
        current[chosen] -= total;
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_follow_the_weights_and_interleave() {
        let balancer = SmoothWeighted::new(3);
        let picks: Vec<usize> = (0..7)
            .map(|_| balancer.pick(&[(0, 5), (1, 1), (2, 1)]).unwrap())
            .collect();
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
        let balancer = SmoothWeighted::new(2);
        let mut counts = [0; 2];
        for _ in 0..3000 {
            counts[balancer.pick(&[(0, 2), (1, 1)]).unwrap()] += 1;
        }
        assert_eq!(counts, [2000, 1000]);
    }

    #[test]
    fn an_absent_candidate_is_skipped() {
        let balancer = SmoothWeighted::new(2);
        for _ in 0..5 {
            assert_eq!(balancer.pick(&[(1, 1)]), Some(1));
        }
        assert_eq!(balancer.pick(&[]), None);
    }
}
