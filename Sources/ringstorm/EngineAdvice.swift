import Glibc
import RingStorm
import RingStormEngine

/// The engine reports why it failed as data (`EngineError.Reason`); this command words the advice in
/// its own options.
extension EngineError {
    var commandLineDescription: String {
        guard let reason else { return description }
        return described(hint: reason.commandLineAdvice(errno))
    }
}

extension EngineError.Reason {
    func commandLineAdvice(_ errno: Errno?) -> String {
        if needsAnotherBackend, let problem { return "\(problem): use --backend epoll" + (keepingIOUring.map { ", \($0)" } ?? "") }
        guard case .bindFailed(let address) = self else { return advice(errno) }
        switch errno {
        case .addressInUse?: return "another process listens there: pick another port with --listen HOST:PORT, or stop it (ss -ltnp 'sport = :\(address.port)')"
        case .addressNotAvailable?, Errno(rawValue: EACCES)?: return advice(errno)
        default: return "pick another --listen address"
        }
    }
}
