//! Wires sources, the loop, the store and the API together.
