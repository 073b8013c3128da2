//! The subset of BVLC Caffe's `caffe.proto` that trained ResNets use, as prost messages. Field
//! numbers are Caffe's; every other field of a real file is skipped by the decoder. Repeated
//! numbers decode whether they were written packed or not.

#[derive(Clone, PartialEq, prost::Message)]
pub struct NetParameter {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Current encoding (`layer`).
    #[prost(message, repeated, tag = "100")]
    pub layer: Vec<LayerParameter>,
    /// Legacy encoding (`layers`, V1LayerParameter).
    #[prost(message, repeated, tag = "2")]
    pub layers: Vec<V1LayerParameter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LayerParameter {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub r#type: Option<String>,
    #[prost(message, repeated, tag = "7")]
    pub blobs: Vec<BlobProto>,
    #[prost(message, optional, tag = "106")]
    pub convolution_param: Option<ConvolutionParameter>,
    #[prost(message, optional, tag = "121")]
    pub pooling_param: Option<PoolingParameter>,
    #[prost(message, optional, tag = "139")]
    pub batch_norm_param: Option<BatchNormParameter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct V1LayerParameter {
    #[prost(string, optional, tag = "4")]
    pub name: Option<String>,
    /// Caffe's V1 `LayerType` enum (CONVOLUTION = 4, INNER_PRODUCT = 14, POOLING = 17, ...).
    #[prost(int32, optional, tag = "5")]
    pub r#type: Option<i32>,
    #[prost(message, repeated, tag = "6")]
    pub blobs: Vec<BlobProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BlobShape {
    #[prost(int64, repeated, tag = "1")]
    pub dim: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BlobProto {
    #[prost(int32, optional, tag = "1")]
    pub num: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    pub channels: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub height: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    pub width: Option<i32>,
    #[prost(float, repeated, tag = "5")]
    pub data: Vec<f32>,
    #[prost(message, optional, tag = "7")]
    pub shape: Option<BlobShape>,
    #[prost(double, repeated, tag = "8")]
    pub double_data: Vec<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConvolutionParameter {
    #[prost(uint32, optional, tag = "1")]
    pub num_output: Option<u32>,
    #[prost(bool, optional, tag = "2")]
    pub bias_term: Option<bool>,
    #[prost(uint32, repeated, tag = "3")]
    pub pad: Vec<u32>,
    #[prost(uint32, repeated, tag = "4")]
    pub kernel_size: Vec<u32>,
    #[prost(uint32, repeated, tag = "6")]
    pub stride: Vec<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PoolingParameter {
    #[prost(int32, optional, tag = "1")]
    pub pool: Option<i32>,
    #[prost(uint32, optional, tag = "2")]
    pub kernel_size: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub stride: Option<u32>,
    #[prost(uint32, optional, tag = "4")]
    pub pad: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchNormParameter {
    #[prost(bool, optional, tag = "1")]
    pub use_global_stats: Option<bool>,
    #[prost(float, optional, tag = "3")]
    pub eps: Option<f32>,
}

/// Name of a V1 layer type, for messages and checks (only the ones ResNets use).
pub fn v1_type_name(code: i32) -> &'static str {
    match code {
        4 => "Convolution",
        14 => "InnerProduct",
        17 => "Pooling",
        18 => "ReLU",
        25 => "Eltwise",
        _ => "",
    }
}
