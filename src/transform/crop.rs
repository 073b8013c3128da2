//! Crops and flips on 8-bit RGB images, placed exactly as torchvision places them.

use image::RgbImage;

/// A rectangle inside an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

/// A crop that does not fit its image (torchvision would pad; we refuse rather than invent pixels).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a {crop_w}x{crop_h} crop does not fit a {image_w}x{image_h} image")]
pub struct CropTooLarge {
    pub crop_w: u32,
    pub crop_h: u32,
    pub image_w: u32,
    pub image_h: u32,
}

/// Python's `round` (half to even) of `n / 2`, which torchvision's `center_crop` uses for offsets.
fn half_rounded_to_even(n: u32) -> u32 {
    let half = n / 2;
    if n % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

fn check_fits(image_w: u32, image_h: u32, crop_w: u32, crop_h: u32) -> Result<(), CropTooLarge> {
    if crop_w > image_w || crop_h > image_h || crop_w == 0 || crop_h == 0 {
        return Err(CropTooLarge { crop_w, crop_h, image_w, image_h });
    }
    Ok(())
}

/// torchvision `center_crop`: offsets `round((size − crop) / 2)`.
pub fn center_region(image_w: u32, image_h: u32, crop_w: u32, crop_h: u32) -> Result<Region, CropTooLarge> {
    check_fits(image_w, image_h, crop_w, crop_h)?;
    Ok(Region {
        left: half_rounded_to_even(image_w - crop_w),
        top: half_rounded_to_even(image_h - crop_h),
        width: crop_w,
        height: crop_h,
    })
}

/// torchvision `five_crop` order: top-left, top-right, bottom-left, bottom-right, center.
pub fn five_regions(image_w: u32, image_h: u32, crop: u32) -> Result<[Region; 5], CropTooLarge> {
    let center = center_region(image_w, image_h, crop, crop)?;
    let (right, bottom) = (image_w - crop, image_h - crop);
    let at = |left, top| Region { left, top, width: crop, height: crop };
    Ok([at(0, 0), at(right, 0), at(0, bottom), at(right, bottom), center])
}

pub fn crop(image: &RgbImage, region: Region) -> RgbImage {
    image::imageops::crop_imm(image, region.left, region.top, region.width, region.height).to_image()
}

pub fn flip_horizontal(image: &RgbImage) -> RgbImage {
    image::imageops::flip_horizontal(image)
}

/// torchvision `TenCrop`: the five crops of the image, then the five crops of its mirror image.
pub fn ten_crop(image: &RgbImage, size: u32) -> Result<Vec<RgbImage>, CropTooLarge> {
    let regions = five_regions(image.width(), image.height(), size)?;
    let mirrored = flip_horizontal(image);
    let views = regions.iter().map(|&r| crop(image, r)).chain(regions.iter().map(|&r| crop(&mirrored, r)));
    Ok(views.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn center_offsets_round_half_to_even_like_python() {
        // (257 − 224) / 2 = 16.5 → 16; (259 − 224) / 2 = 17.5 → 18.
        assert_eq!(center_region(257, 259, 224, 224).unwrap(), Region { left: 16, top: 18, width: 224, height: 224 });
        assert_eq!(center_region(256, 256, 224, 224).unwrap().left, 16);
    }

    #[test]
    fn five_regions_touch_the_corners() {
        let r = five_regions(300, 256, 224).unwrap();
        assert_eq!((r[1].left, r[1].top), (76, 0));
        assert_eq!((r[2].left, r[2].top), (0, 32));
        assert_eq!((r[3].left, r[3].top), (76, 32));
        assert_eq!((r[4].left, r[4].top), (38, 16));
    }

    #[test]
    fn oversized_crop_is_an_error() {
        let err = center_region(200, 300, 224, 224).unwrap_err();
        assert_eq!(err.to_string(), "a 224x224 crop does not fit a 200x300 image");
    }
}
