//! ResNet models: configuration, layers, the network and its complexity.

pub mod complexity;
pub mod config;
pub mod layers;
pub mod resnet;

pub use config::{BlockKind, CifarShortcut, ResNetConfig, StemPool, StridePlacement, Topology};
pub use resnet::{BuildOptions, DenseWindow, ResNet};
