//! Images from samples (the DeepInsight transform), and pictures of the layout.

pub mod feature_map;

use anyhow::{Result, bail};
use ndarray::{ArrayView1, ArrayView2, Axis};

use crate::layout::Layout;

/// Renders one sample's feature vector into `out` (C x H x W, row-major). Features sharing a
/// pixel are averaged; empty pixels are 0.
pub fn render_into(layout: &Layout, sample: ArrayView1<f32>, out: &mut [f32]) {
    let plane = layout.height * layout.width;
    out.fill(0.0);
    let mut counts = vec![0u16; plane];
    for (c, channel) in layout.channels.iter().enumerate() {
        counts.fill(0);
        let image = &mut out[c * plane..(c + 1) * plane];
        for (&feature, &[row, col]) in channel.features.iter().zip(&channel.pixels) {
            let p = row as usize * layout.width + col as usize;
            image[p] += sample[feature];
            counts[p] += 1;
        }
        for (v, &n) in image.iter_mut().zip(&counts) {
            if n > 1 {
                *v /= f32::from(n);
            }
        }
    }
}

/// Renders every row of `samples` (samples x features) into one N x C x H x W buffer.
pub fn render_batch(layout: &Layout, samples: ArrayView2<f32>) -> Result<Vec<f32>> {
    if samples.ncols() < layout.n_inputs() {
        bail!(
            "the layout places {} features but samples have {} columns",
            layout.n_inputs(),
            samples.ncols()
        );
    }
    let len = layout.image_len();
    let mut out = vec![0.0; samples.nrows() * len];
    for (row, chunk) in samples.axis_iter(Axis(0)).zip(out.chunks_mut(len)) {
        render_into(layout, row, chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChannelMode, EmbedMethod};
    use crate::layout::{ChannelLayout, geometry::Frame};
    use ndarray::array;

    fn channel(name: &str, features: Vec<usize>, pixels: Vec<[u32; 2]>) -> ChannelLayout {
        ChannelLayout {
            name: name.into(),
            embedding: vec![[0.0, 0.0]; features.len()],
            features,
            pixels,
            frame: Frame {
                hull: vec![],
                rectangle: vec![],
                rotation: 0.0,
            },
        }
    }

    #[test]
    fn shared_pixels_are_averaged_and_channels_kept_apart() {
        let layout = Layout {
            height: 2,
            width: 2,
            method: EmbedMethod::Pca,
            mode: ChannelMode::Channels,
            channels: vec![
                channel("a", vec![0, 1], vec![[0, 0], [0, 0]]),
                channel("b", vec![2], vec![[1, 1]]),
            ],
        };
        let images = render_batch(&layout, array![[0.2f32, 0.6, 0.9]].view()).unwrap();
        assert_eq!(images.len(), 8);
        assert!((images[0] - 0.4).abs() < 1e-6);
        assert_eq!(&images[1..7], &[0.0; 6]);
        assert!((images[7] - 0.9).abs() < 1e-6);
        assert!(render_batch(&layout, array![[0.2f32, 0.6]].view()).is_err());
    }
}
