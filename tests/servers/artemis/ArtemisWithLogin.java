// Starts an embedded ActiveMQ Artemis whose clients log in through JAAS: Artemis's own
// `embedded.Main` gives its server a JAAS security manager without a login configuration
// name, so no user can log in. Run as a single source file (no javac step):
//   java -Djava.security.auth.login.config=<dir>/etc/login.config \
//        -cp '<artemis jars>/*' ArtemisWithLogin.java <dir>
// It reads <dir>/etc/broker.xml and authenticates against the `activemq` entry of the
// login configuration. It runs until it is killed.
import java.io.File;

import org.apache.activemq.artemis.core.server.embedded.EmbeddedActiveMQ;
import org.apache.activemq.artemis.spi.core.security.ActiveMQJAASSecurityManager;

public class ArtemisWithLogin {
    public static void main(String[] args) throws Exception {
        File config = new File(args[0], "etc/broker.xml");
        EmbeddedActiveMQ server = new EmbeddedActiveMQ();
        server.setConfigResourcePath(config.toURI().toString());
        server.setSecurityManager(new ActiveMQJAASSecurityManager("activemq"));
        server.start();
        Thread.currentThread().join();
    }
}
