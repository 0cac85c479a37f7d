//! Images from samples (the DeepInsight transform), and pictures of the layout.

pub(crate) mod canvas;
pub(crate) mod curves;
pub(crate) mod feature_map;
pub(crate) mod pathway_map;
pub(crate) mod pictures;
pub(crate) mod text;

use anyhow::{Result, bail};
use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;

use crate::layout::Layout;

/// The DeepInsight transform of a layout as flat index arrays, built once: rendering a sample
/// is then one pass over its placed features with no allocation. Features sharing a pixel
/// carry weight 1 / (features on that pixel), so the pixel gets their mean.
#[derive(Debug, Clone)]
pub struct RenderPlan {
    image_len: usize,
    n_inputs: usize,
    /// Column of the sample vector, flat C x H x W index and weight of each placement,
    /// sorted by target so that writes walk the image forwards.
    columns: Vec<u32>,
    targets: Vec<u32>,
    weights: Vec<f32>,
}

impl RenderPlan {
    pub fn new(layout: &Layout) -> Self {
        let plane = layout.height * layout.width;
        let mut entries: Vec<(u32, u32)> = Vec::new();
        for (c, channel) in layout.channels.iter().enumerate() {
            for (&feature, &[row, col]) in channel.features.iter().zip(&channel.pixels) {
                let target = c * plane + row as usize * layout.width + col as usize;
                entries.push((target as u32, feature as u32));
            }
        }
        entries.sort_unstable();
        let mut count = vec![0u16; layout.image_len()];
        for &(t, _) in &entries {
            count[t as usize] += 1;
        }
        Self {
            image_len: layout.image_len(),
            n_inputs: layout.n_inputs(),
            columns: entries.iter().map(|e| e.1).collect(),
            targets: entries.iter().map(|e| e.0).collect(),
            weights: entries
                .iter()
                .map(|e| 1.0 / f32::from(count[e.0 as usize]))
                .collect(),
        }
    }

    /// Values per image: C * H * W.
    pub fn image_len(&self) -> usize {
        self.image_len
    }

    /// Renders one sample into `out` (C x H x W): the single-sample path, on the calling
    /// thread. Empty pixels are 0.
    pub fn render_into(&self, sample: ArrayView1<f32>, out: &mut [f32]) {
        debug_assert_eq!(out.len(), self.image_len);
        out.fill(0.0);
        match sample.as_slice() {
            Some(values) => self.scatter(|c| values[c], out),
            None => self.scatter(|c| sample[c], out),
        }
    }

    fn scatter(&self, value: impl Fn(usize) -> f32, out: &mut [f32]) {
        for ((&c, &t), &w) in self.columns.iter().zip(&self.targets).zip(&self.weights) {
            out[t as usize] += value(c as usize) * w;
        }
    }

    fn check(&self, samples: ArrayView2<f32>) -> Result<()> {
        if samples.ncols() < self.n_inputs {
            bail!(
                "the layout places {} features but samples have {} columns",
                self.n_inputs,
                samples.ncols()
            );
        }
        Ok(())
    }

    /// Renders every row of `samples` into `out` (N x C x H x W), in parallel over samples.
    pub fn render_batch_into(&self, samples: ArrayView2<f32>, out: &mut [f32]) -> Result<()> {
        self.check(samples)?;
        if out.len() != samples.nrows() * self.image_len {
            bail!(
                "output holds {} values, {} images need {}",
                out.len(),
                samples.nrows(),
                samples.nrows() * self.image_len
            );
        }
        // A few images render faster on this thread than through rayon's wake-ups (the
        // server renders one request's samples at a time).
        if samples.nrows() <= 4 {
            for (i, image) in out.chunks_mut(self.image_len).enumerate() {
                self.render_into(samples.row(i), image);
            }
        } else {
            out.par_chunks_mut(self.image_len)
                .enumerate()
                .for_each(|(i, image)| self.render_into(samples.row(i), image));
        }
        Ok(())
    }

    /// Renders every row of `samples` (samples x features) into one N x C x H x W buffer.
    pub fn render_batch(&self, samples: ArrayView2<f32>) -> Result<Vec<f32>> {
        let mut out = vec![0.0; samples.nrows() * self.image_len];
        self.render_batch_into(samples, &mut out)?;
        Ok(out)
    }
}

/// Renders every row of `samples` (samples x features) into one N x C x H x W buffer.
pub fn render_batch(layout: &Layout, samples: ArrayView2<f32>) -> Result<Vec<f32>> {
    RenderPlan::new(layout).render_batch(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{test_channel as channel, test_layout};
    use ndarray::array;

    #[test]
    fn shared_pixels_are_averaged_and_channels_kept_apart() {
        let layout = test_layout(
            2,
            2,
            vec![
                channel("a", vec![0, 1], vec![[0, 0], [0, 0]]),
                channel("b", vec![2], vec![[1, 1]]),
            ],
        );
        let images = render_batch(&layout, array![[0.2f32, 0.6, 0.9]].view()).unwrap();
        assert_eq!(images.len(), 8);
        assert!((images[0] - 0.4).abs() < 1e-6);
        assert_eq!(&images[1..7], &[0.0; 6]);
        assert!((images[7] - 0.9).abs() < 1e-6);
        assert!(render_batch(&layout, array![[0.2f32, 0.6]].view()).is_err());
        // The single-sample path gives the same image, also from a non-contiguous row.
        let plan = RenderPlan::new(&layout);
        let wide = array![[0.2f32, 9.0], [0.6, 9.0], [0.9, 9.0]];
        let mut one = vec![1.0; 8];
        plan.render_into(wide.column(0), &mut one);
        assert_eq!(one, images);
    }
}
