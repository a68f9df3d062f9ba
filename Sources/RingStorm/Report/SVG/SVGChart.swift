import Foundation

/// Charts as standalone SVG text: line charts (linear or log axes) and grouped bars.
///
/// Written by hand rather than with a plotting library so a report stays one self-contained file with
/// no script and no network (the bench's `--html`, the charts under `Docs/images/`). Output is
/// deterministic for the same input (fixed number formatting, no ids from randomness), so a test can
/// check its structure and a committed chart only changes when the data does.
public enum SVGChart {
    public enum Scale: Sendable, Equatable {
        case linear
        /// Base 10; values must be above 0 (others are dropped).
        case log
    }

    /// One axis: its title, its scale and how a tick's value is written.
    public struct Axis: Sendable {
        public var title: String
        public var scale: Scale
        /// Tick values to show instead of the automatic ones.
        public var ticks: [Double]?
        public var tickLabel: @Sendable (Double) -> String
        /// The range to show; nil: from the data (linear axes start at 0).
        public var range: ClosedRange<Double>?

        public init(_ title: String, scale: Scale = .linear, ticks: [Double]? = nil, range: ClosedRange<Double>? = nil,
                    tickLabel: @escaping @Sendable (Double) -> String = SVGChart.number) {
            self.title = title
            self.scale = scale
            self.ticks = ticks
            self.tickLabel = tickLabel
            self.range = range
        }
    }

    /// One line: its points in data units, its colour and whether it is dashed.
    public struct Series: Sendable {
        public var name: String
        public var color: String
        public var dashed: Bool
        public var points: [(x: Double, y: Double)]
        /// Whether it gets an entry in the legend (later rounds of the same backend do not).
        public var inLegend: Bool

        public init(_ name: String, color: String, dashed: Bool = false, inLegend: Bool = true, points: [(x: Double, y: Double)]) {
            self.name = name
            self.color = color
            self.dashed = dashed
            self.points = points
            self.inLegend = inLegend
        }
    }

    /// One group of bars (one per series value).
    public struct BarSeries: Sendable {
        public var name: String
        public var color: String
        public var values: [Double]

        public init(_ name: String, color: String, values: [Double]) {
            self.name = name
            self.color = color
            self.values = values
        }
    }

    /// The plot area inside the whole picture.
    struct Frame {
        let width: Double, height: Double
        let left = 78.0, right = 36.0, top = 40.0, bottom = 64.0
        var plotWidth: Double { width - left - right }
        var plotHeight: Double { height - top - bottom }
    }

    /// `12,345`, `1.5`, `0.012`: short, exact enough for a tick.
    public static let number: @Sendable (Double) -> String = { value in
        if value == 0 { return "0" }
        let magnitude = abs(value)
        if magnitude >= 1000 { return ReportFormat.count(Int(value.rounded())) }
        if magnitude >= 10 { return String(format: "%.0f", value) }
        if magnitude >= 1 { return trimmed(String(format: "%.1f", value)) }
        return trimmed(String(format: "%.3g", value))
    }

    static func trimmed(_ text: String) -> String {
        guard text.contains(".") else { return text }
        var t = text
        while t.hasSuffix("0") { t.removeLast() }
        if t.hasSuffix(".") { t.removeLast() }
        return t
    }

    // MARK: Line chart

    /// A line chart of `series` over `x` and `y`, with a legend.
    public static func line(title: String, width: Double = 540, height: Double = 340, x: Axis, y: Axis, series: [Series]) -> String {
        let frame = Frame(width: width, height: height)
        let kept = series.map { s in
            var s = s
            s.points.removeAll { !((x.scale == .linear || $0.x > 0) && (y.scale == .linear || $0.y > 0) && $0.x.isFinite && $0.y.isFinite) }
            return s
        }
        let xs = kept.flatMap { $0.points.map(\.x) }, ys = kept.flatMap { $0.points.map(\.y) }
        let xRange = x.range ?? range(xs, x.scale)
        let yRange = y.range ?? range(ys, y.scale)
        var svg = open(frame, title: title)
        svg += axes(frame, x: x, xRange: xRange, y: y, yRange: yRange)
        svg += "<g class=\"series\" fill=\"none\" stroke-width=\"2\">\n"
        for s in kept where !s.points.isEmpty {
            let coordinates = s.points.map { p in
                "\(fmt(place(p.x, xRange, x.scale, frame.left, frame.left + frame.plotWidth))),"
                    + "\(fmt(place(p.y, yRange, y.scale, frame.top + frame.plotHeight, frame.top)))"
            }.joined(separator: " ")
            svg += "<polyline data-series=\"\(escape(s.name))\" stroke=\"\(s.color)\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "") points=\"\(coordinates)\"/>\n"
        }
        svg += "</g>\n"
        svg += legend(frame, kept.filter(\.inLegend).map { ($0.name, $0.color, $0.dashed) })
        return svg + "</svg>\n"
    }

    // MARK: Bar chart

    /// Grouped bars: one group per `groups` label, one bar per series in it, each labelled with its value.
    public static func bars(title: String, width: Double = 540, height: Double = 340, groups: [String], y: Axis,
                            series: [BarSeries]) -> String {
        let frame = Frame(width: width, height: height)
        let values = series.flatMap(\.values).filter { $0.isFinite }
        let yRange = y.range ?? range(values, .linear)
        var svg = open(frame, title: title)
        svg += axes(frame, x: nil, xRange: 0...1, y: y, yRange: yRange)
        let groupWidth = frame.plotWidth / Double(max(groups.count, 1))
        let barWidth = groupWidth * 0.7 / Double(max(series.count, 1))
        svg += "<g class=\"bars\">\n"
        for (g, group) in groups.enumerated() {
            let start = frame.left + Double(g) * groupWidth + groupWidth * 0.15
            for (i, s) in series.enumerated() where g < s.values.count && s.values[g].isFinite {
                let value = s.values[g]
                let top = place(value, yRange, .linear, frame.top + frame.plotHeight, frame.top)
                let x0 = start + Double(i) * barWidth
                svg += "<rect data-series=\"\(escape(s.name))\" data-value=\"\(fmt(value))\" x=\"\(fmt(x0 + 2))\" y=\"\(fmt(top))\" "
                    + "width=\"\(fmt(barWidth - 4))\" height=\"\(fmt(frame.top + frame.plotHeight - top))\" fill=\"\(s.color)\"/>\n"
                svg += text(x0 + barWidth / 2, top - 5, y.tickLabel(value), anchor: "middle", size: 11)
            }
            svg += text(start + groupWidth * 0.35, frame.top + frame.plotHeight + 18, group, anchor: "middle", size: 12)
        }
        svg += "</g>\n"
        svg += legend(frame, series.map { ($0.name, $0.color, false) })
        return svg + "</svg>\n"
    }

    // MARK: Pieces

    static func open(_ frame: Frame, title: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(fmt(frame.width))\" height=\"\(fmt(frame.height))\" "
            + "viewBox=\"0 0 \(fmt(frame.width)) \(fmt(frame.height))\" font-family=\"sans-serif\" role=\"img\">\n"
            + "<title>\(escape(title))</title>\n"
            + "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
            + text(frame.width / 2, 22, title, anchor: "middle", size: 15, weight: "bold")
    }

    /// The plot's frame, grid lines, ticks and axis titles (no x ticks for a bar chart: `x` nil).
    static func axes(_ frame: Frame, x: Axis?, xRange: ClosedRange<Double>, y: Axis, yRange: ClosedRange<Double>) -> String {
        let bottom = frame.top + frame.plotHeight, right = frame.left + frame.plotWidth
        var svg = "<g class=\"axes\" stroke=\"#888\" stroke-width=\"1\">\n"
        svg += "<line class=\"x-axis\" x1=\"\(fmt(frame.left))\" y1=\"\(fmt(bottom))\" x2=\"\(fmt(right))\" y2=\"\(fmt(bottom))\"/>\n"
        svg += "<line class=\"y-axis\" x1=\"\(fmt(frame.left))\" y1=\"\(fmt(frame.top))\" x2=\"\(fmt(frame.left))\" y2=\"\(fmt(bottom))\"/>\n"
        svg += "</g>\n<g class=\"ticks\" font-size=\"11\" fill=\"#333\">\n"
        for t in y.ticks ?? ticks(yRange, y.scale) where yRange.contains(t) {
            let py = place(t, yRange, y.scale, bottom, frame.top)
            svg += "<line x1=\"\(fmt(frame.left))\" y1=\"\(fmt(py))\" x2=\"\(fmt(right))\" y2=\"\(fmt(py))\" stroke=\"#e4e4e4\"/>\n"
            svg += text(frame.left - 6, py + 4, y.tickLabel(t), anchor: "end", size: 11)
        }
        if let x {
            for t in x.ticks ?? ticks(xRange, x.scale) where xRange.contains(t) {
                let px = place(t, xRange, x.scale, frame.left, right)
                svg += "<line x1=\"\(fmt(px))\" y1=\"\(fmt(frame.top))\" x2=\"\(fmt(px))\" y2=\"\(fmt(bottom))\" stroke=\"#f0f0f0\"/>\n"
                svg += text(px, bottom + 16, x.tickLabel(t), anchor: "middle", size: 11)
            }
        }
        svg += "</g>\n"
        if let x { svg += text(frame.left + frame.plotWidth / 2, frame.height - 30, x.title, anchor: "middle", size: 12, cls: "x-title") }
        svg += "<text class=\"y-title\" x=\"16\" y=\"\(fmt(frame.top + frame.plotHeight / 2))\" font-size=\"12\" text-anchor=\"middle\" "
            + "transform=\"rotate(-90 16 \(fmt(frame.top + frame.plotHeight / 2)))\">\(escape(y.title))</text>\n"
        return svg
    }

    /// One row of legend entries under the plot.
    static func legend(_ frame: Frame, _ entries: [(name: String, color: String, dashed: Bool)]) -> String {
        var svg = "<g class=\"legend\" font-size=\"12\">\n"
        var x = 20.0
        let y = frame.height - 10
        for e in entries {
            svg += "<line x1=\"\(fmt(x))\" y1=\"\(fmt(y - 4))\" x2=\"\(fmt(x + 22))\" y2=\"\(fmt(y - 4))\" stroke=\"\(e.color)\" stroke-width=\"3\""
                + (e.dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>\n"
            svg += text(x + 27, y, e.name, anchor: "start", size: 12)
            x += 36 + Double(e.name.count) * 6.6
        }
        return svg + "</g>\n"
    }

    static func text(_ x: Double, _ y: Double, _ content: String, anchor: String, size: Int, weight: String? = nil, cls: String? = nil) -> String {
        "<text\(cls.map { " class=\"\($0)\"" } ?? "") x=\"\(fmt(x))\" y=\"\(fmt(y))\" font-size=\"\(size)\" text-anchor=\"\(anchor)\""
            + (weight.map { " font-weight=\"\($0)\"" } ?? "") + ">\(escape(content))</text>\n"
    }

    /// The data's range, padded: linear from 0 (or the minimum if negative) to 5% above the maximum;
    /// log from the power of ten at or below the minimum to the one at or above the maximum.
    static func range(_ values: [Double], _ scale: Scale) -> ClosedRange<Double> {
        switch scale {
        case .linear:
            let low = min(values.min() ?? 0, 0), high = values.max() ?? 1
            return low...(high > low ? high * 1.05 : low + 1)
        case .log:
            let positive = values.filter { $0 > 0 }
            let low = pow(10, floor(log10(positive.min() ?? 1))), high = pow(10, ceil(log10(positive.max() ?? 10)))
            return low...(high > low ? high : low * 10)
        }
    }

    /// Round ticks: 1, 2 or 5 times a power of ten, about five of them (linear); each power of ten (log).
    static func ticks(_ range: ClosedRange<Double>, _ scale: Scale) -> [Double] {
        switch scale {
        case .log:
            var t: [Double] = []
            var v = pow(10, floor(log10(range.lowerBound)))
            while v <= range.upperBound * 1.0001 { t.append(v); v *= 10 }
            return t
        case .linear:
            let span = range.upperBound - range.lowerBound
            guard span > 0 else { return [range.lowerBound] }
            let raw = span / 5, power = pow(10, floor(log10(raw)))
            let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= raw } ?? power * 10
            var t: [Double] = []
            var v = ceil(range.lowerBound / step) * step
            while v <= range.upperBound + step * 1e-9 { t.append(v); v += step }
            return t
        }
    }

    /// A value's position between `from` (the range's low end) and `to` (its high end), in pixels.
    static func place(_ value: Double, _ range: ClosedRange<Double>, _ scale: Scale, _ from: Double, _ to: Double) -> Double {
        let fraction: Double
        switch scale {
        case .linear: fraction = (value - range.lowerBound) / (range.upperBound - range.lowerBound)
        case .log: fraction = (log10(value) - log10(range.lowerBound)) / (log10(range.upperBound) - log10(range.lowerBound))
        }
        return from + (to - from) * min(max(fraction, 0), 1)
    }

    static func fmt(_ value: Double) -> String { trimmed(String(format: "%.1f", value)) }

    /// Text safe inside an element or an attribute.
    public static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}
