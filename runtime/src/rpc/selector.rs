//! Node selection. (Being written.)
/// Strategy.
#[derive(Debug, Clone, Copy, Default)]
pub enum Strategy {
    /// Random.
    #[default]
    Random,
    /// Round robin.
    RoundRobin,
}
