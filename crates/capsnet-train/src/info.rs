//! Layer shapes and parameter counts of an experiment's network (`capsnet info`).

use burn::tensor::Device;
pub use capsnet_common::info::{ForwardMacs, InfoReport, LayerInfo, MemoryEstimate, RoutingInfo};

use crate::config::{Arch, ExperimentConfig};
use crate::error::ConfigError;
use crate::net::Net;

/// The layer table of an experiment's network, checked against the built module's count.
pub fn layers(config: &ExperimentConfig) -> Result<(Vec<LayerInfo>, usize), ConfigError> {
    config.validate()?;
    let rows = layer_table(config);
    let built = Net::init(config, &Device::flex())?.trainable_params();
    let counted: usize = rows.iter().map(|r| r.params).sum();
    assert_eq!(built, counted, "layer table out of sync with the model");
    Ok((rows, built))
}

/// The layer table of a validated experiment's network, from its configuration alone.
pub fn layer_table(config: &ExperimentConfig) -> Vec<LayerInfo> {
    match config.arch {
        Arch::Capsnet => capsnet_layers(&config.model),
        Arch::BaselineCnn => cnn_layers(&config.baseline),
        Arch::EfficientCapsnet => efficient_layers(&config.efficient),
    }
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
        capsules_row(
            "digitcaps",
            &m.routing,
            m.primary_capsules(),
            m.primary_dim,
            m.classes,
            m.class_dim,
            m.digit_bias,
        ),
    ];
    decoder_rows(
        &mut rows,
        &m.decoder,
        m.classes * m.class_dim,
        m.input_len(),
    );
    rows
}

/// The row of a capsule layer: votes `W`, the bias and the routing's priors.
fn capsules_row(
    name: &str,
    routing: &capsnet_model::RoutingConfig,
    children: usize,
    child_dim: usize,
    parents: usize,
    parent_dim: usize,
    bias: bool,
) -> LayerInfo {
    // Iterating algorithms by their iterations (`digitcaps r=3`), the others by name.
    let label = routing
        .iterations()
        .map_or_else(|| routing.describe(), |r| format!("r={r}"));
    let priors = routing
        .priors_shape(parents, children)
        .map_or(0, |[a, b]| a * b);
    row(
        format!("{name} {label}"),
        vec![parents, parent_dim],
        children * child_dim * parents * parent_dim
            + if bias { parents * parent_dim } else { 0 }
            + priors,
    )
}

fn decoder_rows(
    rows: &mut Vec<LayerInfo>,
    decoder: &capsnet_model::DecoderConfig,
    input: usize,
    output: usize,
) {
    if decoder.enabled {
        for (i, w) in decoder.widths(input, output).windows(2).enumerate() {
            rows.push(row(
                format!("decoder fc{}", i + 1),
                vec![w[1]],
                dense(w[0], w[1]),
            ));
        }
    }
}

fn efficient_layers(e: &capsnet_model::EfficientCapsNetConfig) -> Vec<LayerInfo> {
    let mut rows = vec![row(
        "input",
        vec![e.input_channels, e.input_height, e.input_width],
        0,
    )];
    let mut channels = e.input_channels;
    for (i, (conv, (c, h, w))) in e.stem.iter().zip(e.stem_shapes()).enumerate() {
        rows.push(row(
            format!(
                "conv{} {k}x{k} s{} relu bn",
                i + 1,
                conv.stride,
                k = conv.kernel
            ),
            vec![c, h, w],
            // Convolution with bias, batch norm's γ and β (its running statistics are state).
            dense(channels * conv.kernel.pow(2), c) + 2 * c,
        ));
        channels = c;
    }
    rows.push(row(
        format!("primarycaps depthwise {k}x{k} squash", k = e.primary_kernel),
        vec![e.primary_capsules(), e.primary_dim],
        dense(e.primary_kernel.pow(2), channels),
    ));
    rows.push(capsules_row(
        "fccaps",
        &e.routing,
        e.primary_capsules(),
        e.primary_dim,
        e.classes,
        e.class_dim,
        false,
    ));
    decoder_rows(
        &mut rows,
        &e.decoder,
        e.classes * e.class_dim,
        e.input_len(),
    );
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
    let pixels = b.input_channels * b.input_height * b.input_width;
    decoder_rows(&mut rows, &b.decoder, b.decoder_input(), pixels);
    rows
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
            ForwardMacs {
                convolutions: (conv1 + primary) as u64,
                votes: (n * m.primary_dim * m.classes * m.class_dim) as u64,
                routing: m.routing.forward_macs(n, m.classes, m.class_dim),
                dense: decoder_macs(&m.decoder, m.classes * m.class_dim, m.input_len()),
            }
        }
        Arch::EfficientCapsnet => {
            let e = &config.efficient;
            let mut channels = e.input_channels;
            let mut conv = 0;
            for (c, (oc, h, w)) in e.stem.iter().zip(e.stem_shapes()) {
                conv += h * w * oc * channels * c.kernel.pow(2);
                channels = oc;
            }
            let (dc, dh, dw) = e.primary_grid();
            conv += dc * dh * dw * e.primary_kernel.pow(2);
            let n = e.primary_capsules();
            ForwardMacs {
                convolutions: conv as u64,
                votes: (n * e.primary_dim * e.classes * e.class_dim) as u64,
                routing: e.routing.forward_macs(n, e.classes, e.class_dim),
                dense: decoder_macs(&e.decoder, e.classes * e.class_dim, e.input_len()),
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
            let pixels = b.input_channels * b.input_height * b.input_width;
            ForwardMacs {
                convolutions: conv as u64,
                votes: 0,
                routing: 0,
                dense: dense as u64 + decoder_macs(&b.decoder, b.decoder_input(), pixels),
            }
        }
    }
}

fn decoder_macs(decoder: &capsnet_model::DecoderConfig, input: usize, output: usize) -> u64 {
    if !decoder.enabled {
        return 0;
    }
    decoder
        .widths(input, output)
        .windows(2)
        .map(|w| (w[0] * w[1]) as u64)
        .sum()
}

/// Per-example memory above which `capsnet info` (and a training run's log) warns that the
/// votes and routing dominate: 64 MiB, about 40× the paper network's 1.5 MiB.
pub const ROUTING_WARNING_BYTES: u64 = 64 << 20;

/// The [`MemoryEstimate`] of `config`'s network from its layer table `rows` and `params`.
pub fn memory(config: &ExperimentConfig, rows: &[LayerInfo], params: usize) -> MemoryEstimate {
    let bytes = match config.runtime.precision {
        crate::config::Precision::F32 => 4,
        crate::config::Precision::Bf16 | crate::config::Precision::F16 => 2,
        crate::config::Precision::F64 => 8,
    };
    let values = |shape: &[usize]| shape.iter().product::<usize>() as u64;
    let activations: u64 = rows.iter().map(|r| values(&r.output)).sum::<u64>() * bytes;
    let capsules = match config.arch {
        Arch::Capsnet => Some((
            config.model.primary_capsules(),
            config.model.classes,
            config.model.class_dim,
        )),
        Arch::EfficientCapsnet => {
            let e = &config.efficient;
            // The primary capsules are the row before the class capsules: [children, dim].
            let children = rows
                .iter()
                .find(|r| r.name.starts_with("primarycaps"))
                .map_or(0, |r| r.output[0]);
            Some((children, e.classes, e.class_dim))
        }
        Arch::BaselineCnn => None,
    };
    let (votes, routing) = match (capsules, config.routing()) {
        (Some((children, parents, dim)), Some(routing)) => {
            let pairs = (children * parents) as u64;
            let passes = routing.iterations().unwrap_or(1) as u64;
            (pairs * dim as u64 * bytes, 3 * passes * pairs * bytes)
        }
        _ => (0, 0),
    };
    let batch = config.train.batch_size;
    let optimizer = 4 * params as u64 * bytes;
    let training_peak = optimizer + batch as u64 * 2 * (activations + votes + routing);
    let warning = (votes + routing > ROUTING_WARNING_BYTES).then(|| {
        let (children, parents, _) = capsules.unwrap_or_default();
        format!(
            "the votes and routing take {} per example ({children} primary capsules × {parents} classes), {} at batch {batch}: the number of primary capsules grows with the input area; a larger primary stride or kernel, fewer primary types, a smaller input or a smaller batch shrinks it",
            human_bytes(votes + routing),
            human_bytes(batch as u64 * (votes + routing)),
        )
    });
    MemoryEstimate {
        bytes_per_value: bytes,
        activations_per_example: activations,
        votes_per_example: votes,
        routing_per_example: routing,
        capsules: capsules.map(|(c, p, _)| (c, p)),
        parameters_and_optimizer: optimizer,
        batch,
        training_peak,
        warning,
    }
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The memory lines of `capsnet info`.
pub fn render_memory(m: &MemoryEstimate) -> String {
    let mut out = format!(
        "memory per example: activations {}, votes {}, routing {}\n",
        human_bytes(m.activations_per_example),
        human_bytes(m.votes_per_example),
        human_bytes(m.routing_per_example)
    );
    out += &format!(
        "estimated training peak at batch {}: {} (parameters, gradients and Adam state {})\n",
        m.batch,
        human_bytes(m.training_peak),
        human_bytes(m.parameters_and_optimizer)
    );
    if let Some(w) = &m.warning {
        out += &format!("warning: {w}\n");
    }
    out
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
    fn efficient_capsnet_table_has_the_papers_counts() {
        let config = ExperimentConfig {
            arch: Arch::EfficientCapsnet,
            ..ExperimentConfig::default()
        };
        let (rows, total) = layers(&config).unwrap();
        // Mazzia et al. 2021: 161,824 trainable parameters without the decoder.
        let decoder: usize = rows
            .iter()
            .filter(|r| r.name.starts_with("decoder"))
            .map(|r| r.params)
            .sum();
        assert_eq!(total - decoder, 161_824);
        assert_eq!(total, 1_573_168);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "input",
                "conv1 5x5 s1 relu bn",
                "conv2 3x3 s1 relu bn",
                "conv3 3x3 s1 relu bn",
                "conv4 3x3 s2 relu bn",
                "primarycaps depthwise 9x9 squash",
                "fccaps self-attention",
                "decoder fc1",
                "decoder fc2",
                "decoder fc3",
            ]
        );
        assert_eq!(rows[4].output, vec![128, 9, 9]);
        assert_eq!(rows[5].output, vec![16, 8]);
        let macs = forward_macs(&config);
        assert_eq!(macs.routing, 2 * 16 * 10 * 16);
        // ≈ 0.19 GFLOP per trained image (the CapsNet's is 1.2).
        let gflop = macs.train_flops() / 1e9;
        assert!((0.17..0.21).contains(&gflop), "{gflop}");
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
    fn memory_counts_votes_and_routing_and_warns_on_large_inputs() {
        let config = ExperimentConfig::default();
        let (rows, total) = layers(&config).unwrap();
        let m = memory(&config, &rows, total);
        assert_eq!(m.capsules, Some((1152, 10)));
        assert_eq!(m.votes_per_example, 1152 * 10 * 16 * 4);
        // Logits, couplings and agreements for each of the 3 iterations.
        assert_eq!(m.routing_per_example, 3 * 3 * 1152 * 10 * 4);
        assert_eq!(m.parameters_and_optimizer, 4 * 8_215_568 * 4);
        let per_example = m.activations_per_example + m.votes_per_example + m.routing_per_example;
        assert_eq!(
            m.training_peak,
            m.parameters_and_optimizer + 128 * 2 * per_example
        );
        assert!(m.warning.is_none());
        assert!(render_memory(&m).contains("estimated training peak at batch 128"));

        // 128×128 inputs: 56×56×32 = 100,352 primary capsules.
        let mut big = ExperimentConfig::default();
        big.data.dataset = crate::config::Dataset::ImageFolder;
        big.data.root = Some("images".into());
        big.model.input_height = 128;
        big.model.input_width = 128;
        let (rows, total) = layers(&big).unwrap();
        let m = memory(&big, &rows, total);
        assert_eq!(m.capsules, Some((100_352, 10)));
        let warning = m.warning.expect("a warning");
        assert!(warning.contains("100352 primary capsules"), "{warning}");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 B");
    }

    #[test]
    fn grouping() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(35_445_522), "35,445,522");
    }
}
