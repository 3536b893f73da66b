//! Segmentation quality over a labelled dataset: a confusion matrix
//! accumulated frame by frame, then per-class IoU, mean IoU and pixel accuracy
//! (the usual definitions: `IoU = TP / (TP + FP + FN)`; a class that appears
//! in neither the labels nor the predictions of the whole dataset has no IoU
//! and is left out of the mean).

use serde::Serialize;

/// Counts `[truth][predicted]` over labelled pixels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
    /// Pixels whose label is `classes` or more (void, unlabelled).
    void: u64,
}

/// The figures of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    /// Mean of the per-class IoUs that exist, in 0..=1.
    pub mean_iou: f64,
    /// Per class, `None` where the class is in neither labels nor predictions.
    pub class_iou: Vec<Option<f64>>,
    /// Correct labelled pixels over labelled pixels.
    pub pixel_accuracy: f64,
    pub labelled_pixels: u64,
    pub void_pixels: u64,
}

impl ConfusionMatrix {
    pub fn new(classes: usize) -> Self {
        Self { classes, counts: vec![0; classes * classes], void: 0 }
    }

    /// Adds one frame: `truth` and `predicted` are class indices per pixel;
    /// a truth at or above the class count is void and not scored.
    ///
    /// # Panics
    /// When the two differ in length or a prediction is not a class (a bug in
    /// the caller, not bad data).
    pub fn add(&mut self, truth: &[u8], predicted: &[u8]) {
        assert_eq!(truth.len(), predicted.len(), "one prediction per labelled pixel");
        for (&t, &p) in truth.iter().zip(predicted) {
            let (t, p) = (usize::from(t), usize::from(p));
            assert!(p < self.classes, "prediction {p} is not one of {} classes", self.classes);
            if t < self.classes {
                self.counts[t * self.classes + p] += 1;
            } else {
                self.void += 1;
            }
        }
    }

    /// Combines the counts of another part of the dataset.
    pub fn merge(&mut self, other: &ConfusionMatrix) {
        assert_eq!(self.classes, other.classes, "matrices of one model");
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.void += other.void;
    }

    pub fn scores(&self) -> Scores {
        let n = self.classes;
        let count = |t: usize, p: usize| self.counts[t * n + p];
        let class_iou: Vec<Option<f64>> = (0..n)
            .map(|c| {
                let tp = count(c, c);
                let truth: u64 = (0..n).map(|p| count(c, p)).sum();
                let predicted: u64 = (0..n).map(|t| count(t, c)).sum();
                let union = truth + predicted - tp;
                (union > 0).then(|| tp as f64 / union as f64)
            })
            .collect();
        let present: Vec<f64> = class_iou.iter().flatten().copied().collect();
        let labelled: u64 = self.counts.iter().sum();
        let correct: u64 = (0..n).map(|c| count(c, c)).sum();
        Scores {
            mean_iou: if present.is_empty() { 0.0 } else { present.iter().sum::<f64>() / present.len() as f64 },
            class_iou,
            pixel_accuracy: if labelled == 0 { 0.0 } else { correct as f64 / labelled as f64 },
            labelled_pixels: labelled,
            void_pixels: self.void,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_by_hand() {
        let mut m = ConfusionMatrix::new(3);
        // truth:     0 0 1 1 2 9(void)
        // predicted: 0 1 1 1 0 2
        m.add(&[0, 0, 1, 1, 2, 9], &[0, 1, 1, 1, 0, 2]);
        let s = m.scores();
        // class 0: TP 1, FP 1 (the 2 read as 0), FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: 0/1.
        assert_eq!(s.class_iou, [Some(1.0 / 3.0), Some(2.0 / 3.0), Some(0.0)]);
        assert!((s.mean_iou - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!((s.labelled_pixels, s.void_pixels), (5, 1));
        assert!((s.pixel_accuracy - 0.6).abs() < 1e-12);
        // A class seen nowhere has no IoU and does not lower the mean.
        let mut m = ConfusionMatrix::new(4);
        m.add(&[0, 1], &[0, 1]);
        let s = m.scores();
        assert_eq!(s.class_iou, [Some(1.0), Some(1.0), None, None]);
        assert_eq!(s.mean_iou, 1.0);
        // Frames merged equal frames added to one matrix.
        let (mut a, mut b, mut both) = (ConfusionMatrix::new(3), ConfusionMatrix::new(3), ConfusionMatrix::new(3));
        a.add(&[0, 1, 2], &[0, 2, 2]);
        b.add(&[2, 2, 7], &[1, 2, 0]);
        both.add(&[0, 1, 2, 2, 2, 7], &[0, 2, 2, 1, 2, 0]);
        a.merge(&b);
        assert_eq!(a, both);
    }
}
