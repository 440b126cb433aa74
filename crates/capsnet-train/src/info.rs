//! Layer shapes and parameter counts of an experiment's network (`capsnet info`).

use burn::module::Module;
use burn::tensor::Device;
use serde::Serialize;

use crate::config::{Arch, ExperimentConfig};
use crate::error::ConfigError;
use crate::net::Net;

/// One row of the layer table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerInfo {
    /// Layer name.
    pub name: String,
    /// Output shape per example (batch dimension omitted).
    pub output: Vec<usize>,
    /// Parameters of the layer.
    pub params: usize,
}

/// The layer table of an experiment's network, checked against the built module's count.
pub fn layers(config: &ExperimentConfig) -> Result<(Vec<LayerInfo>, usize), ConfigError> {
    config.validate()?;
    let rows = match config.arch {
        Arch::Capsnet => capsnet_layers(&config.model),
        Arch::BaselineCnn => cnn_layers(&config.baseline),
    };
    let built = Net::init(config, &Device::flex())?.num_params();
    let counted: usize = rows.iter().map(|r| r.params).sum();
    assert_eq!(built, counted, "layer table out of sync with the model");
    Ok((rows, built))
}

fn row(name: impl Into<String>, output: Vec<usize>, params: usize) -> LayerInfo {
    LayerInfo {
        name: name.into(),
        output,
        params,
    }
}

fn dense(inputs: usize, outputs: usize) -> usize {
    inputs * outputs + outputs
}

fn capsnet_layers(m: &capsnet_model::CapsNetConfig) -> Vec<LayerInfo> {
    let (h1, w1) = m.conv1_grid();
    let k1 = m.conv1_kernel * m.conv1_kernel;
    let k2 = m.primary_kernel * m.primary_kernel;
    let primary_channels = m.primary_types * m.primary_dim;
    let mut rows = vec![
        row(
            "input",
            vec![m.input_channels, m.input_height, m.input_width],
            0,
        ),
        row(
            format!("conv1 {}x{} s1 relu", m.conv1_kernel, m.conv1_kernel),
            vec![m.conv1_channels, h1, w1],
            dense(m.input_channels * k1, m.conv1_channels),
        ),
        row(
            format!(
                "primarycaps {}x{} s{} squash",
                m.primary_kernel, m.primary_kernel, m.primary_stride
            ),
            vec![m.primary_capsules(), m.primary_dim],
            dense(m.conv1_channels * k2, primary_channels),
        ),
        row(
            format!("digitcaps r={}", m.routing.iterations),
            vec![m.classes, m.class_dim],
            m.primary_capsules() * m.primary_dim * m.classes * m.class_dim
                + if m.digit_bias {
                    m.classes * m.class_dim
                } else {
                    0
                },
        ),
    ];
    if m.decoder.enabled {
        let mut widths = vec![m.classes * m.class_dim];
        widths.extend(&m.decoder.hidden);
        widths.push(m.input_len());
        for (i, w) in widths.windows(2).enumerate() {
            rows.push(row(
                format!("decoder fc{}", i + 1),
                vec![w[1]],
                dense(w[0], w[1]),
            ));
        }
    }
    rows
}

fn cnn_layers(b: &capsnet_model::BaselineCnnConfig) -> Vec<LayerInfo> {
    let mut rows = vec![row(
        "input",
        vec![b.input_channels, b.input_height, b.input_width],
        0,
    )];
    let mut channels = b.input_channels;
    let (mut h, mut w) = (b.input_height, b.input_width);
    for (i, &c) in b.conv_channels.iter().enumerate() {
        let k = b.kernel_of(i);
        if b.pool {
            (h, w) = (h / 2, w / 2);
        }
        rows.push(row(
            format!(
                "conv{} {k}x{k} same relu{}",
                i + 1,
                if b.pool { " + pool" } else { "" }
            ),
            vec![c, h, w],
            dense(channels * k * k, c),
        ));
        channels = c;
    }
    let mut width = channels * h * w;
    for (i, &h) in b.hidden.iter().enumerate() {
        rows.push(row(format!("fc{} relu", i + 1), vec![h], dense(width, h)));
        width = h;
    }
    rows.push(row(
        format!("dropout {} + fc", b.dropout),
        vec![b.classes],
        dense(width, b.classes),
    ));
    rows
}

/// Multiply-accumulates of one forward pass per image, by part of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ForwardMacs {
    /// Convolutions (CapsNet: conv1 + PrimaryCaps; CNN: all convolutions).
    pub convolutions: u64,
    /// CapsNet votes û = W·u.
    pub votes: u64,
    /// CapsNet routing: weighted sums and agreements over all iterations.
    pub routing: u64,
    /// Fully connected layers (CapsNet decoder; CNN classifier).
    pub dense: u64,
}

impl ForwardMacs {
    /// Total forward multiply-accumulates per image.
    pub fn total(&self) -> u64 {
        self.convolutions + self.votes + self.routing + self.dense
    }

    /// FLOPs per image of a training step: forward + backward ≈ 3 × forward, 2 FLOPs per MAC.
    pub fn train_flops(&self) -> f64 {
        6.0 * self.total() as f64
    }

    /// FLOPs per image of inference (2 per MAC).
    pub fn inference_flops(&self) -> f64 {
        2.0 * self.total() as f64
    }
}

/// The FLOP model of an experiment's network (element-wise work such as squash, softmax and
/// activations is not counted; it is memory-bound and small in FLOPs).
pub fn forward_macs(config: &ExperimentConfig) -> ForwardMacs {
    match config.arch {
        Arch::Capsnet => {
            let m = &config.model;
            let (h1, w1) = m.conv1_grid();
            let (h2, w2) = m.primary_grid();
            let conv1 = h1 * w1 * m.conv1_channels * m.input_channels * m.conv1_kernel.pow(2);
            let primary = h2
                * w2
                * m.primary_types
                * m.primary_dim
                * m.conv1_channels
                * m.primary_kernel.pow(2);
            let n = m.primary_capsules();
            let per_pass = m.classes * n * m.class_dim;
            let r = m.routing.iterations.max(1);
            let mut dense = 0;
            if m.decoder.enabled {
                let mut widths = vec![m.classes * m.class_dim];
                widths.extend(&m.decoder.hidden);
                widths.push(m.input_len());
                dense = widths.windows(2).map(|w| w[0] * w[1]).sum();
            }
            ForwardMacs {
                convolutions: (conv1 + primary) as u64,
                votes: (n * m.primary_dim * m.classes * m.class_dim) as u64,
                routing: (per_pass * (2 * r - 1)) as u64,
                dense: dense as u64,
            }
        }
        Arch::BaselineCnn => {
            let b = &config.baseline;
            let (mut h, mut w) = (b.input_height, b.input_width);
            let mut channels = b.input_channels;
            let mut conv = 0;
            for (i, &c) in b.conv_channels.iter().enumerate() {
                conv += h * w * c * channels * b.kernel_of(i).pow(2);
                channels = c;
                if b.pool {
                    (h, w) = (h / 2, w / 2);
                }
            }
            let mut widths = vec![channels * h * w];
            widths.extend(&b.hidden);
            widths.push(b.classes);
            let dense: usize = widths.windows(2).map(|w| w[0] * w[1]).sum();
            ForwardMacs {
                convolutions: conv as u64,
                votes: 0,
                routing: 0,
                dense: dense as u64,
            }
        }
    }
}

/// Renders the layer table as text.
pub fn render(rows: &[LayerInfo], total: usize) -> String {
    let mut out = format!(
        "{:<32} {:>18} {:>12}\n",
        "layer", "output (per image)", "params"
    );
    for r in rows {
        let shape = format!("{:?}", r.output);
        out += &format!("{:<32} {:>18} {:>12}\n", r.name, shape, group(r.params));
    }
    out += &format!("{:<32} {:>18} {:>12}\n", "total", "", group(total));
    out
}

/// `1234567` → `1,234,567`.
fn group(n: usize) -> String {
    capsnet_common::group_thousands(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_table_adds_up() {
        let config = ExperimentConfig::default();
        let (rows, total) = layers(&config).unwrap();
        assert_eq!(total, 8_215_568);
        assert_eq!(rows[2].output, vec![1152, 8]);
        assert!(render(&rows, total).contains("8,215,568"));
        let cnn = ExperimentConfig {
            arch: Arch::BaselineCnn,
            ..ExperimentConfig::default()
        };
        assert_eq!(layers(&cnn).unwrap().1, 35_445_522);
    }

    #[test]
    fn flop_model_matches_the_papers_anchors() {
        // Design notes: PrimaryCaps 191M, conv1 8.3M, votes 1.5M, decoder 1.4M MACs per image;
        // ≈ 1.2 GFLOP per trained image.
        let macs = forward_macs(&ExperimentConfig::default());
        assert_eq!(macs.convolutions, 8_294_400 + 191_102_976);
        assert_eq!(macs.votes, 1_474_560);
        assert_eq!(macs.routing, 5 * 10 * 1152 * 16);
        assert_eq!(macs.dense, 160 * 512 + 512 * 1024 + 1024 * 784);
        let gflop = macs.train_flops() / 1e9;
        assert!((1.2..1.25).contains(&gflop), "{gflop}");
    }

    #[test]
    fn grouping() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(35_445_522), "35,445,522");
    }
}
