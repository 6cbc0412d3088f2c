//! placeholder until the CPU backend lands
