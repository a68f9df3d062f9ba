// nio-echo: a minimal SwiftNIO TCP echo server, what a Swift user would otherwise pick, for comparison with
// `ringstorm serve --protocol echo` under ../shared/yardsticks/measure.sh (Benchmarks/yardsticks.sh WITH_NIO=1).
//
//   nio-echo [--host 127.0.0.1] [--port 7200] [--threads 1]
//
// One event loop by default, like `ringstorm serve` with one thread. The handler is SwiftNIO's own echo
// example: write what is read, flush at the end of each read burst. Bootstrap options as in that example,
// with the accept backlog raised to 4096 to match ringstorm's (10,000 connections arrive at once).
// SwiftNIO sets TCP_NODELAY on accepted sockets by default, as ringstorm does.

import NIOCore
import NIOPosix

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

func usage(_ problem: String) -> Never {
    print("nio-echo: \(problem); usage: nio-echo [--host 127.0.0.1] [--port 7200] [--threads 1]")
    exit(2)
}

var host = "127.0.0.1"
var port = 7200
var threads = 1
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    guard let value = arguments.popFirst() else { usage("\(flag) needs a value") }
    switch flag {
    case "--host": host = value
    case "--port": guard let p = Int(value), (0...65535).contains(p) else { usage("bad port \(value)") }; port = p
    case "--threads": guard let t = Int(value), t >= 1 else { usage("bad thread count \(value)") }; threads = t
    default: usage("unknown option \(flag)")
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 4096)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(EchoHandler())
        }
    }
    .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.maxMessagesPerRead, value: 16)
    .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator())

do {
    let channel = try bootstrap.bind(host: host, port: port).wait()
    print("nio-echo listening on \(channel.localAddress.map { "\($0)" } ?? "\(host):\(port)") with \(threads) event loop(s)")
    try channel.closeFuture.wait()
} catch {
    print("nio-echo: \(error)")
    exit(2)
}
