//! A strided view of a raw storage turned into a contiguous candle tensor: the one place where
//! PyTorch's and Torch7's (size, stride, offset) triples meet their bytes. Every index is checked
//! against the storage before anything is copied, so a hostile layout fails instead of reading
//! past the end, and a tensor is never larger than the storage it comes from (memory stays
//! bounded by the file's size).

use candle_core::{DType, Device, Tensor};

/// Why a (size, stride, offset) view of a storage cannot be materialised.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LayoutError {
    #[error("{sizes} sizes but {strides} strides")]
    RankMismatch { sizes: usize, strides: usize },
    #[error("its element count overflows")]
    Overflow,
    #[error(
        "its last element is at index {last} (offset {offset}, sizes {shape:?}, strides {stride:?}) but its storage \
         holds {storage} elements"
    )]
    PastStorage { last: usize, offset: usize, shape: Vec<usize>, stride: Vec<usize>, storage: usize },
    #[error("it has {elements} elements, more than the {storage} of its storage (a broadcast view is not accepted)")]
    LargerThanStorage { elements: usize, storage: usize },
    #[error("its storage holds {bytes} bytes, not the {expected} that {elements} elements of {dtype:?} need")]
    StorageBytes { bytes: usize, expected: usize, elements: usize, dtype: DType },
    #[error("candle: {0}")]
    Candle(String),
}

/// A view into a storage of `storage_elements` elements, in elements (not bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StridedView {
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
    pub offset: usize,
}

impl StridedView {
    /// The element count, checked for overflow.
    pub fn elements(&self) -> Result<usize, LayoutError> {
        self.shape.iter().try_fold(1usize, |n, &s| n.checked_mul(s)).ok_or(LayoutError::Overflow)
    }

    fn is_row_major(&self) -> bool {
        let mut expected = 1usize;
        for (&size, &stride) in self.shape.iter().zip(&self.stride).rev() {
            // A dimension of size 1 can carry any stride without moving any element.
            if size != 1 && stride != expected {
                return false;
            }
            expected = expected.saturating_mul(size);
        }
        true
    }
}

/// Copies the elements `view` selects from `storage` (little-endian `dtype` values) into a new
/// contiguous CPU tensor of `dtype`.
pub fn materialize(storage: &[u8], dtype: DType, view: &StridedView) -> Result<Tensor, LayoutError> {
    if view.shape.len() != view.stride.len() {
        return Err(LayoutError::RankMismatch { sizes: view.shape.len(), strides: view.stride.len() });
    }
    let element_size = dtype.size_in_bytes();
    let storage_elements = storage.len() / element_size;
    if storage.len() % element_size != 0 {
        return Err(LayoutError::StorageBytes {
            bytes: storage.len(),
            expected: storage_elements * element_size,
            elements: storage_elements,
            dtype,
        });
    }
    let elements = view.elements()?;
    let candle = |e: candle_core::Error| LayoutError::Candle(e.to_string());
    if elements == 0 {
        return Tensor::zeros(view.shape.as_slice(), dtype, &Device::Cpu).map_err(candle);
    }
    let last = view
        .shape
        .iter()
        .zip(&view.stride)
        .try_fold(view.offset, |last, (&size, &stride)| {
            (size - 1).checked_mul(stride).and_then(|s| last.checked_add(s))
        })
        .ok_or(LayoutError::Overflow)?;
    if last >= storage_elements {
        return Err(LayoutError::PastStorage {
            last,
            offset: view.offset,
            shape: view.shape.clone(),
            stride: view.stride.clone(),
            storage: storage_elements,
        });
    }
    if elements > storage_elements {
        return Err(LayoutError::LargerThanStorage { elements, storage: storage_elements });
    }
    let bytes = if view.is_row_major() {
        let start = view.offset * element_size;
        storage[start..start + elements * element_size].to_vec()
    } else {
        gather(storage, element_size, view, elements)
    };
    Tensor::from_raw_buffer(&bytes, dtype, &view.shape, &Device::Cpu).map_err(candle)
}

/// Walks the view's indices in row-major order (an odometer over the dimensions), copying one
/// element at a time. Bounds were checked by the caller through the last element's index.
fn gather(storage: &[u8], element_size: usize, view: &StridedView, elements: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(elements * element_size);
    let mut index = vec![0usize; view.shape.len()];
    let mut position = view.offset;
    for _ in 0..elements {
        let start = position * element_size;
        bytes.extend_from_slice(&storage[start..start + element_size]);
        for dim in (0..index.len()).rev() {
            index[dim] += 1;
            position += view.stride[dim];
            if index[dim] < view.shape[dim] {
                break;
            }
            position -= view.stride[dim] * view.shape[dim];
            index[dim] = 0;
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn transposed_view_is_gathered_in_row_major_order() {
        let storage = f32_bytes(&[0., 1., 2., 3., 4., 5.]);
        // A 2x3 row-major matrix read as its 3x2 transpose.
        let view = StridedView { shape: vec![3, 2], stride: vec![1, 3], offset: 0 };
        let t = materialize(&storage, DType::F32, &view).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap(), vec![vec![0., 3.], vec![1., 4.], vec![2., 5.]]);
    }

    #[test]
    fn offset_view_starts_inside_the_storage() {
        let storage = f32_bytes(&[0., 1., 2., 3., 4., 5.]);
        let view = StridedView { shape: vec![2], stride: vec![2], offset: 1 };
        assert_eq!(materialize(&storage, DType::F32, &view).unwrap().to_vec1::<f32>().unwrap(), vec![1., 3.]);
    }

    #[test]
    fn stride_past_the_storage_is_refused() {
        let storage = f32_bytes(&[0.; 6]);
        let view = StridedView { shape: vec![2, 3], stride: vec![4, 1], offset: 0 };
        let err = materialize(&storage, DType::F32, &view).unwrap_err();
        assert!(matches!(err, LayoutError::PastStorage { last: 6, storage: 6, .. }), "{err}");
    }

    #[test]
    fn broadcast_larger_than_storage_is_refused() {
        let storage = f32_bytes(&[1.]);
        let view = StridedView { shape: vec![1 << 40], stride: vec![0], offset: 0 };
        let err = materialize(&storage, DType::F32, &view).unwrap_err();
        assert!(matches!(err, LayoutError::LargerThanStorage { .. }), "{err}");
    }
}
