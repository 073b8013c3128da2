//! ResNet models: configuration, layers, the network and its complexity.

pub mod complexity;
pub mod config;
pub mod layers;
pub mod nhwc;
pub mod resnet;

pub use config::{BlockKind, CifarShortcut, ResNetConfig, StemPool, StridePlacement, Topology};
pub use resnet::{Backend, BuildOptions, DenseWindow, ResNet};
