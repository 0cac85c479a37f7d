//! Mixup (Zhang et al., 2018): each training batch is replaced by convex combinations of its
//! images with those of a shuffled copy of the batch, and the loss by the same combination of
//! the two targets' losses. On a DeepInsight image a blend of two samples is the picture of
//! the blend of their feature values (the mapping to pixels is linear per pixel), so unlike
//! flips or crops it stays a plausible sample; it smooths the decision boundary between the
//! few hundred samples a cohort has.

use burn::nn::loss::CrossEntropyLoss;
use burn::tensor::{Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};

/// One batch's draw: the weight of each sample's own image, and the batch position it is
/// mixed with.
#[derive(Debug, Clone, PartialEq)]
pub struct Mixup {
    pub lambda: f64,
    pub partner: Vec<usize>,
}

impl Mixup {
    /// λ ~ Beta(alpha, alpha) and a random partner for each of `n` samples.
    pub fn draw(n: usize, alpha: f64, rng: &mut ChaCha8Rng) -> Self {
        let lambda = Beta::new(alpha, alpha)
            .expect("train.mixup_alpha is checked to be positive")
            .sample(rng);
        let mut partner: Vec<usize> = (0..n).collect();
        partner.shuffle(rng);
        Self { lambda, partner }
    }

    fn partners(&self, device: &burn::tensor::Device) -> Tensor<1, Int> {
        let idx: Vec<i64> = self.partner.iter().map(|&p| p as i64).collect();
        Tensor::from_data(TensorData::new(idx, [self.partner.len()]), device)
    }

    /// λ x + (1 - λ) x[partner], over the batch (N x C x H x W).
    pub fn images(&self, images: Tensor<4>) -> Tensor<4> {
        let partners = images.clone().select(0, self.partners(&images.device()));
        images
            .mul_scalar(self.lambda)
            .add(partners.mul_scalar(1.0 - self.lambda))
    }

    /// λ loss(y) + (1 - λ) loss(y[partner]).
    pub fn loss(
        &self,
        loss: &CrossEntropyLoss,
        logits: Tensor<2>,
        targets: Tensor<1, Int>,
    ) -> Tensor<1> {
        let partners = targets.clone().select(0, self.partners(&targets.device()));
        loss.forward(logits.clone(), targets)
            .mul_scalar(self.lambda)
            .add(loss.forward(logits, partners).mul_scalar(1.0 - self.lambda))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::tensor::Device;
    use rand::SeedableRng;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn mixed_images_and_loss_are_the_stated_combinations() {
        let device = Device::flex();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mix = Mixup::draw(4, 0.4, &mut rng);
        assert!(mix.lambda > 0.0 && mix.lambda < 1.0);
        let mut sorted = mix.partner.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3], "a permutation of the batch");
        let flat: Vec<f32> = (0..4 * 2 * 3 * 3).map(|v| v as f32 * 0.5 - 7.0).collect();
        let images = Tensor::<4>::from_data(TensorData::new(flat.clone(), [4, 2, 3, 3]), &device);
        let mixed = values(mix.images(images));
        for n in 0..4 {
            let p = mix.partner[n];
            for k in 0..18 {
                let want = mix.lambda * flat[n * 18 + k] as f64
                    + (1.0 - mix.lambda) * flat[p * 18 + k] as f64;
                assert!((mixed[n * 18 + k] as f64 - want).abs() < 1e-5);
            }
        }
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![2.0f32, -1.0, 0.5, 0.0, 1.0, 1.5, -2.0, 0.3], [4, 2]),
            &device,
        );
        let targets =
            Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 1, 0], [4]), &device);
        let loss = CrossEntropyLossConfig::new().init(&device);
        let got = values(mix.loss(&loss, logits.clone(), targets.clone()))[0] as f64;
        let swapped: Vec<i64> = mix.partner.iter().map(|&p| [0i64, 1, 1, 0][p]).collect();
        let swapped = Tensor::<1, Int>::from_data(TensorData::new(swapped, [4]), &device);
        let own = values(loss.forward(logits.clone(), targets))[0] as f64;
        let other = values(loss.forward(logits, swapped))[0] as f64;
        assert!((got - (mix.lambda * own + (1.0 - mix.lambda) * other)).abs() < 1e-5);
    }

    #[test]
    fn the_draw_follows_the_seed_and_small_alpha_keeps_images_nearly_whole() {
        let draw = |seed| Mixup::draw(16, 0.05, &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(draw(1), draw(1));
        // Beta(0.05, 0.05) puts nearly all its mass next to 0 and 1.
        let near_whole = (0..200)
            .filter(|&s| {
                let l = draw(s).lambda;
                !(0.05..=0.95).contains(&l)
            })
            .count();
        assert!(near_whole > 150, "{near_whole} of 200");
    }
}
